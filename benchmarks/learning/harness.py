"""The continuous-training protocol in a realistic regime, with the product's selection code.

For each seed, M0 trains on span 0 (all rows, exactly as `full` trains). Then for each chain (strategy, budget,
seed) and step t = 1..T: the chain's model M(t-1) serves span t (one forward pass: the prediction and the L2
norm of the head's input, exactly what `recorder.export_recording_model` emits); the product's pure selection
path (`plan.reference_selection` on the scores `signals.compute_scores` gives from those float32 records)
selects and weights span t; M(t) continues from M(t-1) on the selected rows with the weights (as float32, what
the Curator writes) as Keras `sample_weight`, and is tested on span t+1 (that forward pass is also the next
step's serving).

Training follows the product's Trainer (`pipelines/trainer_module.py`): its model code (`model.build_model`),
batch size 256, 2 epochs, Adam at the model config's learning rate, the shuffle of `model.make_dataset`
(buffer 20,000, reshuffled each epoch). The Trainer's warm start (`model.export` saves the Keras weights in TF
checkpoint format, `model.load_weights` restores them) carries Adam's state — its iteration count and moment
slots are in the checkpoint and restored when the optimiser builds (`test_trainer_warm_start_carries_adam_state`).
So each chain carries its optimiser state across steps; `fresh_optimizer=True` resets it every step instead
(the sensitivity row).

The Beam job is not run per chain: `tests/benchmarks/test_learning_benchmark.py` proves, for every strategy the benchmark uses,
that the Curator Beam job selects byte-identical ids and float32 weights to the pure path on the harness's own
forward records; and every run still runs the real Beam job for the default strategy (seed 0, every budget, at
the steps of `beam_check_steps`) and fails if the selection differs.

Each finished (strategy, budget, seed, step) row is appended to the raw CSV at once, and each chain's state
(weights and optimiser variables) is saved after every step, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time

import numpy as np

from benchmarks.learning import datasets as ds_lib
from tfx_curator.components.curator.options import CurationOptions

WEIGHT = "sample_weight"
SHUFFLE_BUFFER = 20_000  # model.make_dataset's shuffle buffer


@dataclasses.dataclass(frozen=True)
class Arm:
    """A strategy as the benchmark runs it: Curator options beside the budget and the task."""

    name: str
    strategy: str
    mode: str = "window"
    mix: float = 0.0
    hidden_norm: bool = True
    versions: int = 1  # > 1: scored by the chain's last `versions` served models (policy/passes.py)

    def options(self, budget: float, task: str, splits: tuple[str, ...] = ("train",)) -> CurationOptions:
        return CurationOptions(
            task=task,
            budget=budget,
            strategy=self.strategy,
            mode=self.mode,
            mix=self.mix,
            hidden_norm_key="hidden_norm" if self.hidden_norm else None,
            duplicate_policy="mean_std" if self.versions > 1 else "latest",
            weight_feature=WEIGHT,
            splits=splits,
            seed=0,  # ids are seed-tagged: each seed still gets its own hash draws
            compute_statistics=False,
        )

    @property
    def signal(self) -> str:
        """The signal behind the scores (transforms.score_signal): the strategy's own, else the loss."""
        from tfx_curator.components.curator.policy import strategies

        return strategies.strategy_signal(self.strategy)


FULL = Arm("full", "full")
ARMS: tuple[Arm, ...] = (
    Arm("uniform", "uniform"),
    Arm("negative_downsampling", "negative_downsampling"),
    Arm("top_k", "top_k"),
    Arm("loss_window", "loss", "window", 0.0),
    Arm("loss_global", "loss", "global", 0.0),
    Arm("grad_norm", "grad_norm", "window", 0.0),
    Arm("grad_norm_no_hidden", "grad_norm", "window", 0.0, hidden_norm=False),
    Arm("defensive_0.1", "loss", "window", 0.1),
    Arm("defensive_0.3", "loss", "window", 0.3),
    Arm("defensive_0.5", "loss", "window", 0.5),
    # issue 14: label-aware water-filling, with the product's default mix 0.1 (mixed within each class)
    Arm("stratified_loss", "stratified_loss", "window", 0.1),
    Arm("stratified_grad_norm", "stratified_grad_norm", "window", 0.1),
    Arm("balanced_loss", "balanced_loss", "window", 0.1),
    # issue 14 item 2: the default scored by the last 3 served model versions of the chain, mean loss +
    # 1 * std (passes.DISAGREEMENT_BETA, fixed before the runs); steps 1 and 2 have 1 and 2 versions.
    Arm("versions3_loss", "loss", "window", 0.1, versions=3),
)
ARM_BY_NAME = {a.name: a for a in (FULL, *ARMS)}
DEFENSIVE = tuple(a.name for a in ARMS if a.name.startswith("defensive_"))
# The product's default (options.py: strategy loss, mode window, mix 0.1).
DEFAULT_ARM = "defensive_0.1"
# The focused list of the v2 runs (issue 11).
FOCUSED = (
    "full",
    "uniform",
    "negative_downsampling",
    "top_k",
    "loss_window",
    "loss_global",
    "grad_norm",
    DEFAULT_ARM,
)


# Label-aware water-filling (issue 14), run beside FOCUSED.
STRATIFIED = ("stratified_loss", "stratified_grad_norm", "balanced_loss")
# Several forward passes per example (issue 14 item 2), run beside the default and the two baselines.
KPASS = ("versions3_loss",)


def default_arm_matches_options() -> bool:
    d, a = CurationOptions(), ARM_BY_NAME[DEFAULT_ARM]
    return (d.strategy, d.mode, d.mix, d.hidden_norm_key is not None) == (
        a.strategy,
        a.mode,
        a.mix,
        a.hidden_norm,
    )


def arms_for(task: str, names: list[str] | None = None) -> list[Arm]:
    arms = [a for a in ARMS if not (task == "regression" and a.strategy == "negative_downsampling")]
    if names:
        unknown = set(names) - set(ARM_BY_NAME)
        if unknown:
            raise ValueError(f"unknown arms {sorted(unknown)}; known: {sorted(ARM_BY_NAME)}")
        arms = [a for a in arms if a.name in names]
    return arms


# ---------------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------------


def quality(task: str, labels: np.ndarray, preds: np.ndarray, mean: float = 0.0, sd: float = 1.0) -> dict:
    """Test metrics of predictions on a span: binary log loss, AUC, average precision, calibration
    (mean prediction / mean label); regression RMSE and calibration in the target's original unit."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(labels, np.float64)
    p = np.asarray(preds, np.float64)
    if task == "binary":
        q = np.clip(p, 1e-7, 1 - 1e-7)
        two_classes = 0 < y.sum() < y.size
        return {
            "log_loss": float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q))),
            "auc": float(roc_auc_score(y, p)) if two_classes else math.nan,
            "ap": float(average_precision_score(y, p)) if two_classes else math.nan,
            "calibration": float(p.mean() / y.mean()) if y.mean() > 0 else math.nan,
        }
    y, p = y * sd + mean, p * sd + mean
    return {"rmse": float(np.sqrt(np.mean((y - p) ** 2))), "calibration": float(p.mean() / y.mean())}


# ---------------------------------------------------------------------------------------------------------
# Selection: the pure library path, and the Beam job it is held to
# ---------------------------------------------------------------------------------------------------------


def served_scores(
    arm: Arm, task: str, preds: np.ndarray, norms: np.ndarray, labels: np.ndarray
) -> np.ndarray:
    """Scores as the Curator computes them from the plain forward records (float32 prediction and norm).

    preds [n, k] (k served versions, the newest first; norms of the newest only): the per-record scores
    combined by `passes.combine` (the `mean_std` duplicate policy's rule)."""
    from tfx_curator.components.curator.policy import passes, signals

    p = np.asarray(preds, np.float32).astype(np.float64)
    h = np.asarray(norms, np.float32).astype(np.float64) if arm.hidden_norm else None
    y = np.asarray(labels, np.float64)
    if p.ndim == 1:
        return signals.compute_scores(arm.signal, p, y, task, hidden_norm=h)
    per_pass = [
        signals.compute_scores(arm.signal, p[:, j], y, task, hidden_norm=h if j == 0 else None)
        for j in range(p.shape[1])
    ]
    return passes.combine(np.stack(per_pass, axis=1))


def select(arm: Arm, budget: float, task: str, ids, preds, norms, labels) -> tuple[np.ndarray, np.ndarray]:
    """(indices kept, float32 weights) of one chain's span: `plan.reference_selection`, the Beam job's pure twin."""
    from tfx_curator.components.curator.policy import plan

    scores = served_scores(arm, task, preds, norms, labels)
    keep, weight, _ = plan.reference_selection(arm.options(budget, task), ids, scores, labels)
    kept = np.flatnonzero(keep)
    return kept, weight[kept].astype(np.float32)


def forward_records(
    ids: list[bytes], preds: np.ndarray, norms: np.ndarray, version: str, when: int
) -> list[bytes]:
    """Plain forward records (schemas/ forward-record format) for one served span; preds [n, k]: k records per
    example, one per served version (`version`-0 the newest), the norms logged with each."""
    import pyarrow as pa
    from tfx_bsl.coders import example_coder

    if np.ndim(preds) == 2:
        return [
            r
            for j in range(preds.shape[1])
            for r in forward_records(ids, preds[:, j], norms, f"{version}-{j}", when - j)
        ]
    n = len(ids)
    batch = pa.RecordBatch.from_arrays(
        [
            pa.array([[i] for i in ids], pa.list_(pa.binary())),
            pa.array(preds.astype(np.float32).reshape(n, 1).tolist(), pa.list_(pa.float32())),
            pa.array(norms.astype(np.float32).reshape(n, 1).tolist(), pa.list_(pa.float32())),
            pa.array([[when]] * n, pa.list_(pa.int64())),
            pa.array([[version.encode()]] * n, pa.list_(pa.binary())),
        ],
        ["example_id", "prediction", "hidden_norm", "timestamp", "model_version"],
    )
    return example_coder.RecordBatchToExamples(batch)


def curate_job(task: dict) -> dict:
    """One Curator Beam job (`job.build` -> `curate.Curate`, DirectRunner in memory) over several splits.

    task: options (JSON), examples {split: path}, records (path), out (folder, replaced). Returns
    {"seconds", "splits": {split: {"path", "selected": {id: float32 weight}, "read", "rejected"}}}; the
    report's accounting is checked (every example read is selected, not selected or rejected).
    """
    import apache_beam as beam
    import tensorflow as tf
    from apache_beam.options.pipeline_options import PipelineOptions

    from tfx_curator.components.curator.beam import job, writers
    from tfx_curator.components.curator.reporting import report as report_lib

    options = CurationOptions.from_json(task["options"])
    out = task["out"]
    shutil.rmtree(out, ignore_errors=True)
    curated_uri, report_uri = os.path.join(out, "curated"), os.path.join(out, "report")
    start = time.time()
    with beam.Pipeline(options=PipelineOptions(["--direct_running_mode=in_memory"])) as pipeline:
        job.build(
            pipeline,
            task["examples"],
            task["records"],
            options,
            curated_uri,
            report_uri,
            compute_statistics=False,
        )
    figures = job.read_raw_figures(report_uri)
    report = report_lib.build_report(figures.to_dict(), figures.examples_read())
    report_lib.check_accounting(report)
    splits = {}
    for split, r in report["splits"].items():
        pattern = os.path.join(writers.split_dir(curated_uri, split), "*")
        selected = {}
        for raw in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), compression_type="GZIP"):
            f = tf.train.Example.FromString(raw.numpy()).features.feature
            selected[f[options.id_feature].bytes_list.value[0]] = np.float32(
                f[options.weight_feature].float_list.value[0]
            )
        splits[split] = {
            "path": pattern,
            "selected": selected,
            "read": r["accounting"]["examples_read"],
            "rejected": r["accounting"]["rejected"],
        }
    return {"seconds": time.time() - start, "splits": splits}


def beam_matches_pure(
    arm: Arm, budget: float, task: str, example_file: str, ids, preds, norms, labels, out: str
) -> dict:
    """Runs the real Curator Beam job on one chain's span and compares with `select`; returns the comparison."""
    records = os.path.join(out, "forward_records.tfrecord")
    ds_lib.write_records(records, forward_records(list(ids), preds, norms, "check", 1))
    result = curate_job(
        {
            "options": arm.options(budget, task, ("train",)).to_json(),
            "examples": {"train": example_file},
            "records": records,
            "out": os.path.join(out, "job"),
        }
    )
    beam = result["splits"]["train"]["selected"]
    kept, weights = select(arm, budget, task, ids, preds, norms, labels)
    pure = {ids[i]: w for i, w in zip(kept, weights)}
    same_ids = set(beam) == set(pure)
    same_weights = same_ids and all(beam[k].tobytes() == pure[k].tobytes() for k in pure)
    return {
        "identical": bool(same_ids and same_weights),
        "selected": len(pure),
        "beam_selected": len(beam),
        "rejected": result["splits"]["train"]["rejected"],
        "seconds": round(result["seconds"], 1),
    }


# ---------------------------------------------------------------------------------------------------------
# Model: one compiled Keras model whose state (weights, optimiser) is swapped per chain
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Span:
    """A parsed span in memory: the model's input features, labels, ids without the seed tag."""

    features: dict
    labels: np.ndarray
    ids: list[bytes]

    def tagged_ids(self, seed: int) -> list[bytes]:
        tag = f"#s{seed}".encode()
        return [i + tag for i in self.ids]


class Learner:
    """The Trainer's model code (`pipelines/model.py`) with one compiled model reused for every chain.

    A chain's state is (weights, optimiser variables). `train` sets both (or zeroes the optimiser with
    `fresh_optimizer`), fits on the selected rows as `model.train` would on the curated files, and returns the new
    state; `serve` returns predictions and the L2 norm of the head's input (the recorder's sub-model).
    """

    def __init__(self, model_config, epochs: int, batch_size: int, fresh_optimizer: bool = False):
        import tensorflow as tf
        import tf_keras as keras

        from tfx_curator.pipelines import model as model_lib

        self._tf, self._lib = tf, model_lib
        self.config = model_config
        self.epochs, self.batch_size, self.fresh_optimizer = epochs, batch_size, fresh_optimizer
        self.model = model_lib.build_model(model_config, seed=0)
        self.model.optimizer.build(self.model.trainable_variables)
        serving = keras.Model(
            self.model.input, [self.model.get_layer(model_lib.HEAD_INPUT_LAYER).output, self.model.output]
        )

        @tf.function(reduce_retracing=True)
        def forward(features):
            hidden, prediction = serving(features, training=False)
            hidden = tf.reshape(tf.cast(hidden, tf.float32), [tf.shape(hidden)[0], -1])
            return tf.reshape(prediction, [-1]), tf.norm(hidden, axis=1)

        self._forward = forward

    def initial_state(self, seed: int) -> tuple[list, list]:
        """A new model's weights (seeded as the Trainer's `build_model(seed)`) and a fresh Adam."""
        weights = self._lib.build_model(self.config, seed=seed).get_weights()
        return weights, [np.zeros_like(v.numpy()) for v in self.model.optimizer.variables]

    def load_span(self, path: str) -> Span:
        tf = self._tf
        batches, labels = [], []
        for features, y in self._lib.make_dataset(path, 4096, None, self.config):
            batches.append({k: v.numpy() for k, v in features.items()})
            labels.append(y.numpy()[:, 0])
        features = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
        ids = []
        spec = {ds_lib.ID: tf.io.FixedLenFeature([], tf.string)}
        for raw in tf.data.TFRecordDataset(path).batch(4096):
            ids.extend(tf.io.parse_example(raw, spec)[ds_lib.ID].numpy().tolist())
        tag = ids[0][ids[0].rindex(b"#s") :] if ids and b"#s" in ids[0] else b""
        ids = [i[: len(i) - len(tag)] if tag and i.endswith(tag) else i for i in ids]
        return Span(features, np.concatenate(labels), ids)

    def serve(self, state, span: Span) -> tuple[np.ndarray, np.ndarray]:
        self.model.set_weights(state[0])
        n = span.labels.size
        preds, norms = [], []
        for start in range(0, n, 8192):
            batch = {k: v[start : start + 8192] for k, v in span.features.items()}
            p, h = self._forward(batch)
            preds.append(p.numpy())
            norms.append(h.numpy())
        return np.concatenate(preds), np.concatenate(norms)

    def train(self, state, span: Span, rows: np.ndarray | None, weights: np.ndarray | None, seed: int):
        """Fit on span rows (None: all) weighted by `weights` (None: unweighted); returns the new state."""
        tf = self._tf
        self.model.set_weights(state[0])
        for v, value in zip(self.model.optimizer.variables, state[1]):
            v.assign(np.zeros_like(value) if self.fresh_optimizer else value)
        features = span.features if rows is None else {k: v[rows] for k, v in span.features.items()}
        labels = (span.labels if rows is None else span.labels[rows]).astype(np.float32)[:, None]
        parts = (
            (features, labels) if weights is None else (features, labels, weights.astype(np.float32)[:, None])
        )
        ds = (
            tf.data.Dataset.from_tensor_slices(parts)
            .shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
            .batch(self.batch_size)
            .prefetch(2)
        )
        if labels.shape[0]:
            self.model.fit(ds, epochs=self.epochs, verbose=0)
        return self.model.get_weights(), [v.numpy() for v in self.model.optimizer.variables]


def save_state(path: str, step: int, state) -> None:
    tmp = path + ".tmp.npz"
    arrays = {f"w{i}": w for i, w in enumerate(state[0])}
    arrays.update({f"o{i}": o for i, o in enumerate(state[1])})
    np.savez(tmp, step=np.int64(step), n_w=len(state[0]), n_o=len(state[1]), **arrays)
    os.replace(tmp, path)


def load_state(path: str):
    with np.load(path) as z:
        return int(z["step"]), (
            [z[f"w{i}"] for i in range(int(z["n_w"]))],
            [z[f"o{i}"] for i in range(int(z["n_o"]))],
        )


# ---------------------------------------------------------------------------------------------------------
# Independent yardstick: logistic regression on the whole span
# ---------------------------------------------------------------------------------------------------------


def logistic_yardstick(model_config, train: Span, test: Span) -> dict:
    """scikit-learn LogisticRegression on span t (one-hot categoricals + standardised numerics), tested on t+1."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def table(span: Span) -> dict:
        cols = {}
        for f in model_config.categorical:
            v = span.features[f.name][:, 0]
            cols["c_" + f.name] = v.astype(str) if v.dtype.kind in "SO" else v.astype(np.int64)
        for f in model_config.numeric:
            x = span.features[f.name][:, 0].astype(np.float64)
            cols["n_" + f.name] = np.log1p(np.maximum(x, 0.0)) if f.log else x
        return cols

    import pandas as pd

    xtr, xte = pd.DataFrame(table(train)), pd.DataFrame(table(test))
    cat = [c for c in xtr if c.startswith("c_")]
    num = [c for c in xtr if c.startswith("n_")]
    model = make_pipeline(
        ColumnTransformer(
            [("cat", OneHotEncoder(handle_unknown="ignore"), cat), ("num", StandardScaler(), num)]
        ),
        LogisticRegression(max_iter=1000),
    )
    model.fit(xtr, train.labels.astype(int))
    return quality("binary", test.labels, model.predict_proba(xte)[:, 1])


# ---------------------------------------------------------------------------------------------------------
# The protocol
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class RunConfig:
    budgets: tuple[float, ...] = (0.05, 0.1, 0.3)
    arms: tuple[str, ...] | None = None  # None: all that apply to the task
    epochs: int = 2  # the Trainer's default
    batch_size: int = 256  # the Trainer's default
    seeds_override: int | None = None  # same number of seeds for every budget
    arm_seeds: tuple[tuple[str, int], ...] = ()  # at most this many seeds for an arm (e.g. top_k)
    fresh_optimizer: bool = (
        False  # sensitivity: a fresh Adam every step instead of the Trainer's carried state
    )
    beam_check_steps: tuple[int, ...] | None = (
        1,
    )  # steps where the default arm's Beam job is compared; None: all
    yardstick: bool = True  # logistic regression per step (binary tasks)

    def protocol(self) -> dict:
        """What must match for a run to resume from an earlier one's rows."""
        return {
            "budgets": list(self.budgets),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "fresh_optimizer": self.fresh_optimizer,
        }


def seeds_for(dataset: ds_lib.DatasetConfig, run: RunConfig, budget: float, arm: str | None = None) -> int:
    n = run.seeds_override or dataset.seeds_for(budget)
    if arm is not None:
        n = min(n, dict(run.arm_seeds).get(arm, n))
    return n


def chain_list(prepared: ds_lib.Prepared, run: RunConfig) -> list[tuple[str, float, int]]:
    """(arm, budget, seed) of every chain, seed-major: seeds complete in order, so a partial run is usable."""
    cfg = prepared.config
    arms = arms_for(cfg.task, list(run.arms) if run.arms else None)
    with_full = not run.arms or FULL.name in run.arms
    max_seeds = max(seeds_for(cfg, run, b) for b in run.budgets)
    chains = []
    for s in range(max_seeds):
        if with_full and s < dict(run.arm_seeds).get(FULL.name, max_seeds):
            chains.append((FULL.name, 1.0, s))
        for b in run.budgets:
            for a in arms:
                if s < seeds_for(cfg, run, b, a.name):
                    chains.append((a.name, b, s))
    return list(dict.fromkeys(chains))


class RowLog:
    """The raw CSV: one row appended (and flushed) per finished (arm, budget, seed, step)."""

    COLUMNS = (
        "arm",
        "budget",
        "seed",
        "step",
        "log_loss",
        "auc",
        "ap",
        "calibration",
        "rmse",
        "trained",
        "backward",
        "selected",
        "rate",
        "sum_w_over_n",
        "max_w",
        "positives_selected",
        "select_seconds",
        "train_seconds",
    )

    def __init__(self, path: str):
        import pandas as pd

        self.path = path
        self.done: dict[tuple[str, float, int], int] = {}
        if os.path.exists(path) and os.path.getsize(path) > 0:
            old = pd.read_csv(path)
            for r in old.itertuples(index=False):
                key = (r.arm, round(float(r.budget), 6), int(r.seed))
                self.done[key] = max(self.done.get(key, -1), int(r.step))
        else:
            with open(path, "w") as f:
                f.write(",".join(self.COLUMNS) + "\n")

    def last_step(self, arm: str, budget: float, seed: int) -> int:
        return self.done.get((arm, round(float(budget), 6), seed), -1)

    def append(self, row: dict) -> None:
        def fmt(v):
            if v is None:
                return ""
            if isinstance(v, float):
                return "" if math.isnan(v) else f"{v:.6g}"
            return str(v)

        with open(self.path, "a") as f:
            f.write(",".join(fmt(row.get(c)) for c in self.COLUMNS) + "\n")
            f.flush()
            os.fsync(f.fileno())
        key = (row["arm"], round(float(row["budget"]), 6), int(row["seed"]))
        self.done[key] = max(self.done.get(key, -1), int(row["step"]))


def run_protocol(prepared: ds_lib.Prepared, run: RunConfig, out_dir: str, csv_path: str, log=print) -> dict:
    """Replays the protocol, appending rows to `csv_path` and resuming from it; returns timing and checks."""
    cfg = prepared.config
    if not default_arm_matches_options():
        raise RuntimeError(
            f"arm {DEFAULT_ARM} no longer matches CurationOptions' defaults: update DEFAULT_ARM"
        )
    learner = Learner(prepared.model_config, run.epochs, run.batch_size, run.fresh_optimizer)
    rows = RowLog(csv_path)
    states_dir = os.path.join(out_dir, "states")
    os.makedirs(states_dir, exist_ok=True)
    timing = {"train_seconds": 0.0, "serve_seconds": 0.0, "select_seconds": 0.0, "beam_check_seconds": 0.0}
    checks: list[dict] = []
    t_start = time.time()
    spans = {t: learner.load_span(prepared.span_file(t, 0)) for t in range(cfg.n_spans)}
    log(f"[{cfg.name}] {cfg.n_spans} spans parsed ({time.time() - t_start:.0f}s)")
    T = cfg.steps

    def state_path(arm, b, s):
        return os.path.join(states_dir, f"{arm}@{b:g}@s{s}.npz")

    def record(arm, b, s, t, state, info):
        t0 = time.time()
        preds, norms = learner.serve(state, spans[t + 1])
        timing["serve_seconds"] += time.time() - t0
        m = quality(cfg.task, spans[t + 1].labels, preds, prepared.target_mean, prepared.target_sd)
        save_state(state_path(arm, b, s), t, state)
        rows.append({"arm": arm, "budget": b, "seed": s, "step": t, **m, **info})
        return preds, norms

    def m0(s):
        """M0 of seed s (trained as `full` trains), from its saved state when done."""
        path = state_path("M0", 0.0, s)
        if rows.last_step("M0", 0.0, s) == 0 and os.path.exists(path):
            return load_state(path)[1]
        t0 = time.time()
        state = learner.train(learner.initial_state(s), spans[0], None, None, seed=s)
        timing["train_seconds"] += time.time() - t0
        n = spans[0].labels.size
        record("M0", 0.0, s, 0, state, {"trained": n, "backward": n * run.epochs, "selected": n, "rate": 1.0})
        return state

    def older_states(arm, b, s, done, versions):
        """The states of steps done-1, ..., done-versions+1 (step 0: M0), newest first; None if one is missing."""
        older = []
        for step in range(done - 1, max(done - versions, -1), -1):
            path = state_path("M0", 0.0, s) if step == 0 else f"{state_path(arm, b, s)}.step{step}"
            if not os.path.exists(path) or load_state(path)[0] != step:
                return None
            older.append(load_state(path)[1])
        return older

    check_steps = set(range(1, T + 1)) if run.beam_check_steps is None else set(run.beam_check_steps)
    default = ARM_BY_NAME[DEFAULT_ARM]
    chains = chain_list(prepared, run)
    for k, (name, b, s) in enumerate(chains):
        arm = ARM_BY_NAME[name]
        done = rows.last_step(name, b, s)
        if done >= T:
            continue
        history = None  # the chain's older served models, newest first (arms scored by several versions)
        if (
            done >= 1
            and os.path.exists(state_path(name, b, s))
            and load_state(state_path(name, b, s))[0] == done
        ):
            history = older_states(name, b, s, done, arm.versions)
        if history is not None:
            state = load_state(state_path(name, b, s))[1]
            first = done + 1
        else:
            state, first, history = m0(s), 1, []
        t_chain = time.time()
        preds, norms = learner.serve(state, spans[first])
        for t in range(first, T + 1):
            span = spans[t]
            t0 = time.time()
            if arm is FULL:
                kept, weights = None, None
                n = span.labels.size
                info = {"trained": n, "backward": n * run.epochs, "selected": n, "rate": 1.0}
            else:
                ids = span.tagged_ids(s)
                served = preds
                if arm.versions > 1 and history:
                    t1 = time.time()
                    served = np.stack([preds, *(learner.serve(h, span)[0] for h in history)], axis=1)
                    timing["serve_seconds"] += time.time() - t1
                kept, weights = select(arm, b, cfg.task, ids, served, norms, span.labels)
                n = span.labels.size
                info = {
                    "trained": kept.size,
                    "backward": kept.size * run.epochs,
                    "selected": kept.size,
                    "rate": kept.size / n,
                    "sum_w_over_n": float(weights.astype(np.float64).sum()) / n,
                    "max_w": float(weights.max()) if weights.size else math.nan,
                    "positives_selected": int(span.labels[kept].sum()) if cfg.task == "binary" else None,
                }
                if arm is default and s == 0 and t in check_steps:
                    t1 = time.time()
                    c = beam_matches_pure(
                        arm,
                        b,
                        cfg.task,
                        prepared.span_file(t, 0),
                        ids,
                        preds,
                        norms,
                        span.labels,
                        os.path.join(out_dir, "beam_check", f"{name}@{b:g}-step{t}"),
                    )
                    timing["beam_check_seconds"] += time.time() - t1
                    checks.append({"arm": name, "budget": b, "seed": s, "step": t, **c})
                    log(f"[{cfg.name}] Beam job vs pure selection, {name}@{b:g} step {t}: {c}")
                    if not c["identical"]:
                        raise RuntimeError(f"the Curator Beam job and plan.reference_selection differ: {c}")
            info["select_seconds"] = time.time() - t0
            timing["select_seconds"] += info["select_seconds"]
            t0 = time.time()
            if arm.versions > 1:
                history = [state, *history][: arm.versions - 1]
            state = learner.train(state, span, kept, weights, seed=1000 * t + s)
            info["train_seconds"] = time.time() - t0
            timing["train_seconds"] += info["train_seconds"]
            if arm.versions > 1:
                save_state(f"{state_path(name, b, s)}.step{t}", t, state)
            preds, norms = record(name, b, s, t, state, info)
        log(
            f"[{cfg.name}] chain {k + 1}/{len(chains)} {name}@{b:g} seed {s}: steps {first}-{T} in "
            f"{time.time() - t_chain:.0f}s (total {time.time() - t_start:.0f}s)"
        )
    yardstick = []
    if run.yardstick and cfg.task == "binary":
        t0 = time.time()
        for t in range(1, T + 1):
            yardstick.append({"step": t, **logistic_yardstick(prepared.model_config, spans[t], spans[t + 1])})
        timing["yardstick_seconds"] = time.time() - t0
    timing["run_seconds"] = time.time() - t_start
    return {"timing": timing, "beam_checks": checks, "logistic_regression": yardstick}
