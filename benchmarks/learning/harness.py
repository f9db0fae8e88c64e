"""The continuous-training protocol (GUIDE section 5) with the real Curator job and the Trainer's model code.

For each seed, M0 trains on span 0 (all rows). Then for each step t = 1..T and each chain (strategy, budget,
seed): the chain's model M(t-1) serves span t (one forward pass: prediction and the L2 norm of the head's input,
exactly what `recorder.export_recording_model` emits) and those become plain forward records; the Curator Beam
job (`job.build` -> `transforms.curate`, DirectRunner in memory) selects and weights span t; M(t) continues from
M(t-1) on the curated split with the weights as Keras `sample_weight` (`model.train`, fresh Adam as in the
Trainer's warm start) and is evaluated on span t+1 (that forward pass is also the next step's serving).

One Curator job per (strategy, budget) and step curates the chains of all its seeds at once, one split per
seed: each seed's examples carry seed-tagged ids, and plans (windows, global threshold, negative down-sampling
rates, top-k threshold) are solved per split, so every chain is curated exactly as a job of its own would.
Jobs run in a small process pool while the main process trains the chains whose subsets are ready.

`full` trains on the whole span without a Curator job (all rows, weight 1: what strategy `full` selects).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import time

import numpy as np

from benchmarks.learning import datasets as ds_lib
from tfx_curator.components.curator.options import CurationOptions

WEIGHT = "sample_weight"


@dataclasses.dataclass(frozen=True)
class Arm:
    """A strategy as the benchmark runs it: Curator options beside the budget and the task."""

    name: str
    strategy: str
    mode: str = "window"
    mix: float = 0.0
    hidden_norm: bool = True

    def options(self, budget: float, task: str, splits: tuple[str, ...]) -> CurationOptions:
        return CurationOptions(
            task=task,
            budget=budget,
            strategy=self.strategy,
            mode=self.mode,
            mix=self.mix,
            hidden_norm_key="hidden_norm" if self.hidden_norm else None,
            weight_feature=WEIGHT,
            splits=splits,
            seed=0,  # ids are seed-tagged: each seed still gets its own hash draws
        )


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
)
ARM_BY_NAME = {a.name: a for a in (FULL, *ARMS)}
DEFENSIVE = tuple(a.name for a in ARMS if a.name.startswith("defensive_"))


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
# Curation (runs in pool workers: module-level, picklable arguments)
# ---------------------------------------------------------------------------------------------------------


def curate_job(task: dict) -> dict:
    """One Curator Beam job over several splits; returns its report figures per split.

    task: key, options (JSON), examples {split: path}, records (path), out (folder, replaced).
    """
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from tfx_curator.components.curator import job, transforms
    from tfx_curator.components.curator import report as report_lib

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
    read = {s: f["events"].get(transforms.EXAMPLES_READ, 0) for s, f in figures["splits"].items()}
    report = report_lib.build_report(figures, read)
    report_lib.check_accounting(report)  # every example read is selected, not selected or rejected
    with open(os.path.join(report_uri, "report.json"), "w") as f:
        json.dump(report, f, indent=1, default=str)
    splits = {}
    for split, r in report["splits"].items():
        splits[split] = {
            "path": os.path.join(transforms.split_dir(curated_uri, split), "*"),
            "read": r["accounting"]["examples_read"],
            "selected": r["budget"]["achieved"],
            "expected": r["budget"]["expected"],
            "rate": r["budget"]["rate"],
            "rejected": r["accounting"]["rejected"],
            "error_ratio_vs_uniform": r["estimator_error"]["ratio_vs_uniform"],
            "ess": r["effective_sample_size"],
            "sum_w": r["weights"]["sum"],
            "max_w": r["weights"]["max"],
            "positives_selected": r["labels"]["selected"]["1"],
        }
    return {"key": task["key"], "seconds": time.time() - start, "splits": splits}


def _init_worker() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)


# ---------------------------------------------------------------------------------------------------------
# Model: one Keras model whose weights are swapped per chain
# ---------------------------------------------------------------------------------------------------------


class Learner:
    """The Trainer's model code (`pipelines/model.py`) with one compiled model reused for every chain.

    A chain's state is its weight list; training sets it, resets Adam (a fresh optimiser, as the Trainer's
    warm start builds a new compiled model) and calls `model.train`; serving calls the model with its head's
    input as a second output (the recorder's sub-model) and takes its L2 norm.
    """

    def __init__(self, model_config, epochs: int, batch_size: int):
        import tensorflow as tf
        import tf_keras as keras

        from tfx_curator.pipelines import model as model_lib

        self._tf, self._lib = tf, model_lib
        self.config = model_config
        self.epochs, self.batch_size = epochs, batch_size
        self.model = model_lib.build_model(model_config, seed=0)
        serving = keras.Model(
            self.model.input, [self.model.get_layer(model_lib.HEAD_INPUT_LAYER).output, self.model.output]
        )

        @tf.function(reduce_retracing=True)
        def forward(features):
            hidden, prediction = serving(features, training=False)
            hidden = tf.reshape(tf.cast(hidden, tf.float32), [tf.shape(hidden)[0], -1])
            return tf.reshape(prediction, [-1]), tf.norm(hidden, axis=1)

        self._forward = forward

    def initial_weights(self, seed: int) -> list:
        return self._lib.build_model(self.config, seed=seed).get_weights()

    def load_span(self, path: str):
        """(feature batches, labels, ids) of a span file, parsed once with the model's feature spec."""
        tf = self._tf
        batches, labels = [], []
        for features, y in self._lib.make_dataset(path, 4096, None, self.config):
            batches.append(features)
            labels.append(y.numpy()[:, 0])
        ids = []
        spec = {ds_lib.ID: tf.io.FixedLenFeature([], tf.string)}
        for raw in tf.data.TFRecordDataset(path).batch(4096):
            ids.extend(tf.io.parse_example(raw, spec)[ds_lib.ID].numpy().tolist())
        return batches, np.concatenate(labels), ids

    def serve(self, weights: list, batches) -> tuple[np.ndarray, np.ndarray]:
        self.model.set_weights(weights)
        preds, norms = zip(*[(p.numpy(), h.numpy()) for p, h in (self._forward(b) for b in batches)])
        return np.concatenate(preds), np.concatenate(norms)

    def train(self, weights: list, pattern: str, weighted: bool, seed: int) -> list:
        self.model.set_weights(weights)
        for v in self.model.optimizer.variables:
            v.assign(self._tf.zeros_like(v))
        self._lib.train(
            self.model,
            pattern,
            weight_feature=WEIGHT if weighted else None,
            epochs=self.epochs,
            batch_size=self.batch_size,
            config=self.config,
            seed=seed,
        )
        return self.model.get_weights()


def forward_records(
    ids: list[bytes], preds: np.ndarray, norms: np.ndarray, version: str, when: int
) -> list[bytes]:
    """Plain forward records (schemas/ forward-record format) for one served span."""
    import pyarrow as pa
    from tfx_bsl.coders import example_coder

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


# ---------------------------------------------------------------------------------------------------------
# The protocol
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class RunConfig:
    budgets: tuple[float, ...] = (0.05, 0.1, 0.3)
    arms: tuple[str, ...] | None = None  # None: all that apply to the task
    epochs: int = 2
    batch_size: int = 64
    workers: int = 2  # Curator jobs in parallel (0: in the main process)
    seeds_override: int | None = None  # same number of seeds for every budget
    keep_curated: bool = False  # keep each step's forward records and Curator outputs (tests)


def seeds_for(dataset: ds_lib.DatasetConfig, run: RunConfig, budget: float) -> int:
    return run.seeds_override or dataset.seeds_for(budget)


def run_protocol(prepared: ds_lib.Prepared, run: RunConfig, out_dir: str, log=print) -> dict:
    """Replays the protocol; returns {"rows": [...], "timing": {...}} (one row per chain and step)."""
    import multiprocessing

    cfg = prepared.config
    arms = arms_for(cfg.task, list(run.arms) if run.arms else None)
    max_seeds = max(seeds_for(cfg, run, b) for b in run.budgets)
    learner = Learner(prepared.model_config, run.epochs, run.batch_size)
    rows: list[dict] = []
    timing = {"curate_jobs": 0, "curate_job_seconds": 0.0, "train_seconds": 0.0, "serve_seconds": 0.0}
    t_start = time.time()

    def chains_of(arm: Arm):
        if arm is FULL:
            return [(FULL.name, 1.0, s) for s in range(max_seeds)]
        return [(arm.name, b, s) for b in run.budgets for s in range(seeds_for(cfg, run, b))]

    all_arms = ([FULL] if not run.arms or FULL.name in run.arms else []) + arms
    chains = [c for a in all_arms for c in chains_of(a)]
    span = {}

    def load(t):
        if t not in span:
            span[t] = learner.load_span(prepared.span_file(t, 0))
        span.pop(t - 2, None)
        return span[t]

    # M0 per seed, served on span 1
    weights, served = {}, {}
    for s in range(max_seeds):
        t0 = time.time()
        w = learner.train(learner.initial_weights(s), prepared.span_file(0, s), weighted=False, seed=s)
        timing["train_seconds"] += time.time() - t0
        batches, labels, _ = load(1)
        preds, norms = learner.serve(w, batches)
        m = quality(cfg.task, labels, preds, prepared.target_mean, prepared.target_sd)
        rows.append({"arm": "M0", "budget": 0.0, "seed": s, "step": 0, **m})
        for c in chains:
            if c[2] == s:
                weights[c], served[c] = w, (preds, norms)
    log(f"[{cfg.name}] M0 trained for {max_seeds} seeds ({time.time() - t_start:.0f}s)")

    pool = None
    if run.workers > 0:
        pool = multiprocessing.get_context("spawn").Pool(run.workers, initializer=_init_worker)
    try:
        for t in range(1, cfg.steps + 1):
            t_step = time.time()
            base_ids = [i[: i.rindex(b"#s")] for i in load(t)[2]]
            next_batches, next_labels, _ = load(t + 1)
            step_dir = os.path.join(out_dir, f"step-{t:02d}")
            tasks = []
            for arm in arms:
                for b in run.budgets:
                    seeds = list(range(seeds_for(cfg, run, b)))
                    key = f"{arm.name}@{b:g}"
                    records = []
                    for s in seeds:
                        preds, norms = served[(arm.name, b, s)]
                        tag = f"#s{s}".encode()
                        ids = [i + tag for i in base_ids]
                        records += forward_records(ids, preds, norms, f"{key}-s{s}-m{t - 1}", t)
                    rec_path = os.path.join(step_dir, key, "forward_records.tfrecord")
                    ds_lib.write_records(rec_path, records)
                    splits = tuple(f"seed{s}" for s in seeds)
                    tasks.append(
                        {
                            "key": (arm.name, b),
                            "options": arm.options(b, cfg.task, splits).to_json(),
                            "examples": {f"seed{s}": prepared.span_file(t, s) for s in seeds},
                            "records": rec_path,
                            "out": os.path.join(step_dir, key, "job"),
                        }
                    )
            results = pool.imap_unordered(curate_job, tasks) if pool else map(curate_job, tasks)

            def advance(
                chain, pattern, weighted, info, t=t, next_batches=next_batches, next_labels=next_labels
            ):
                arm, b, s = chain
                t0 = time.time()
                w = learner.train(weights[chain], pattern, weighted, seed=1000 * t + s)
                t1 = time.time()
                preds, norms = learner.serve(w, next_batches)
                t2 = time.time()
                timing["train_seconds"] += t1 - t0
                timing["serve_seconds"] += t2 - t1
                weights[chain], served[chain] = w, (preds, norms)
                m = quality(cfg.task, next_labels, preds, prepared.target_mean, prepared.target_sd)
                rows.append({"arm": arm, "budget": b, "seed": s, "step": t, **m, **info})

            if FULL in all_arms:
                for chain in chains_of(FULL):
                    n = prepared.rows[t]
                    info = {"trained": n, "backward": n * run.epochs, "selected": n, "rate": 1.0}
                    advance(chain, prepared.span_file(t, chain[2]), False, info)
            for result in results:
                name, b = result["key"]
                timing["curate_jobs"] += 1
                timing["curate_job_seconds"] += result["seconds"]
                for split, r in result["splits"].items():
                    s = int(split[len("seed") :])
                    info = {
                        "trained": r["selected"],
                        "backward": r["selected"] * run.epochs,
                        "selected": r["selected"],
                        "expected": r["expected"],
                        "rate": r["rate"],
                        "error_ratio_vs_uniform": r["error_ratio_vs_uniform"],
                        "ess": r["ess"],
                        "sum_w_over_n": r["sum_w"] / r["read"] if r["read"] else math.nan,
                        "max_w": r["max_w"],
                        "positives_selected": r["positives_selected"],
                        "curate_seconds": result["seconds"],
                    }
                    advance((name, b, s), r["path"], True, info)
            if not run.keep_curated:
                shutil.rmtree(step_dir, ignore_errors=True)
            log(
                f"[{cfg.name}] step {t}/{cfg.steps}: {len(tasks)} Curator jobs, {len(chains)} chains, "
                f"{time.time() - t_step:.0f}s (total {time.time() - t_start:.0f}s)"
            )
    finally:
        if pool:
            pool.close()
            pool.join()
    timing["wall_seconds"] = time.time() - t_start
    return {"rows": rows, "timing": timing}
