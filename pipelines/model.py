"""The demo model: a small tf_keras wide-and-deep over the nycflights13 demo features.

Shared by the TFX Trainer module (trainer_module.py) and the benchmark harness, so it imports neither TFX nor
Beam. tf_keras (Keras 2), not Keras 3: TFX 1.16's Evaluator (TFMA) and Transform are Keras-2 only.

Architecture (binary task: sigmoid output; regression: linear output):

- wide: one-hot of every categorical feature plus hashed crosses (origin x departure hour, carrier x origin);
- deep: an embedding per categorical feature and the standardised numeric features -> Dense(64) -> Dense(32);
- head: one Dense unit over [wide, deep]. The recorder's `hidden_norm` is the L2 norm of the head's input
  (layer :data:`HEAD_INPUT_LAYER`), so `|y - p| * sqrt(hidden_norm**2 + 1)` is exactly the norm of the loss
  gradient with respect to the head's weights and bias (the Curator's `grad_norm` signal).

Numeric features are standardised with fixed constants (rounded 2013 figures: no adapt pass, and the scaling
stays identical across continuous-training steps and warm starts). A missing value (weather at some hours)
parses as the feature's centre, i.e. 0 after standardisation. Categorical vocabularies come from the schema's
string domains (carrier, origin); open domains (dest) are hashed.

    m = build_model()
    train(m, "data/span-01/*.gz", weight_feature=None, epochs=2)
    export(m, "serving/1")              # SavedModel with prediction, hidden_norm, example_id outputs
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence

import tensorflow as tf
import tf_keras as keras

from tfx_curator.data import nycflights


def _do_not_autograph_tf_keras() -> None:
    """Keep AutoGraph from transpiling tf_keras' own code (it already skips `keras`, not `tf_keras`).

    Without this, the first `fit`/`predict` of this model spends ~50 s converting Keras internals (measured on
    2 cores); with it ~3 s. Layers' `call` methods still run as written (tf_keras converts them explicitly
    where needed).
    """
    from tensorflow.python.autograph.core import config as autograph_config

    rule = autograph_config.DoNotConvert("tf_keras")
    if not any(getattr(r, "_prefix", None) == "tf_keras" for r in autograph_config.CONVERSION_RULES):
        autograph_config.CONVERSION_RULES = (rule, *autograph_config.CONVERSION_RULES)


_do_not_autograph_tf_keras()

WEIGHT_FEATURE = "sample_weight"
HEAD_INPUT_LAYER = "head_input"
OUTPUT_LAYER = "prediction"
# Kept beside the SavedModel (TF Serving ignores assets.extra/) so a next model can warm-start from it.
KERAS_WEIGHTS_SUBDIR = os.path.join("assets.extra", "keras_weights")
MODEL_CONFIG_FILE = os.path.join("assets.extra", "model_config.json")


@dataclasses.dataclass(frozen=True)
class Categorical:
    """A single-valued categorical feature: a closed vocabulary, or `hash_bins` buckets."""

    name: str
    vocabulary: tuple = ()
    hash_bins: int = 0
    embedding_dim: int = 4
    dtype: str = "string"  # or "int64"

    @property
    def size(self) -> int:  # number of ids, OOV included
        return len(self.vocabulary) + 1 if self.vocabulary else self.hash_bins


@dataclasses.dataclass(frozen=True)
class Numeric:
    """A single-valued numeric feature standardised as (f(x) - center) / scale, f = log1p when `log`."""

    name: str
    center: float
    scale: float
    log: bool = False
    dtype: str = "float32"  # or "int64"

    @property
    def default(self) -> float:
        """Raw value that a missing feature parses as: the one that standardises to 0."""
        return math.expm1(self.center) if self.log else self.center


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Features, label and size of the wide-and-deep model."""

    label: str
    categorical: tuple[Categorical, ...]
    numeric: tuple[Numeric, ...]
    crosses: tuple[tuple[str, str, int], ...] = ()  # (feature, feature, hash bins), wide part only
    task: str = "binary"  # or "regression"
    id_feature: str = nycflights.ID_FEATURE
    hidden_units: tuple[int, ...] = (64, 32)
    learning_rate: float = 3e-3

    def __post_init__(self):
        if self.task not in ("binary", "regression"):
            raise ValueError(f"task must be 'binary' or 'regression', got {self.task!r}")
        for group in (self.categorical, self.numeric):
            names = [f.name for f in group]
            if len(set(names)) != len(names):
                raise ValueError(f"duplicate feature names in {names}")
        names = self.feature_names
        for a, b, _ in self.crosses:
            if a not in names or b not in names:
                raise ValueError(f"cross ({a}, {b}) uses a feature the model does not take")

    @property
    def feature_names(self) -> list[str]:
        """Model inputs; a feature may be both categorical (wide, embedding) and numeric (deep)."""
        return list(dict.fromkeys([f.name for f in self.categorical] + [f.name for f in self.numeric]))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        d = json.loads(text)
        d["categorical"] = tuple(
            Categorical(**{**c, "vocabulary": tuple(c["vocabulary"])}) for c in d["categorical"]
        )
        d["numeric"] = tuple(Numeric(**n) for n in d["numeric"])
        d["crosses"] = tuple(tuple(c) for c in d["crosses"])
        d["hidden_units"] = tuple(d["hidden_units"])
        return cls(**d)


def schema_vocabulary(domain: str, schema_file: str | None = None) -> tuple[str, ...]:
    """Values of a string domain of the demo schema (parsed with tensorflow_metadata only, no TFDV)."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    path = schema_file or nycflights.schema_path()
    with open(path, encoding="utf-8") as f:
        schema = text_format.Parse(f.read(), schema_pb2.Schema())
    for d in schema.string_domain:
        if d.name == domain:
            return tuple(d.value)
    raise KeyError(f"no string domain {domain!r} in {path}")


def flights_config() -> ModelConfig:
    """The demo task: nycflights13, label arr_delay > 15 min, pre-departure features only.

    `month` is left out: in continuous training every next span is a month the model has never seen.
    """
    return ModelConfig(
        label=nycflights.LABEL_FEATURE,
        categorical=(
            Categorical("carrier", vocabulary=schema_vocabulary("carrier"), embedding_dim=4),
            Categorical("origin", vocabulary=schema_vocabulary("origin"), embedding_dim=2),
            Categorical("dest", hash_bins=128, embedding_dim=6),
            Categorical("sched_dep_hour", vocabulary=tuple(range(24)), embedding_dim=4, dtype="int64"),
            Categorical("weekday", vocabulary=tuple(range(7)), embedding_dim=2, dtype="int64"),
        ),
        numeric=(
            Numeric("distance", 6.7, 0.7, log=True),
            Numeric("sched_dep_hour", 13.1, 4.7, dtype="int64"),
            Numeric("sched_dep_minute", 26.0, 19.0, dtype="int64"),
            Numeric("sched_arr_hour", 15.0, 5.0, dtype="int64"),
            Numeric("temp", 57.0, 18.0),
            Numeric("dewp", 41.5, 19.0),
            Numeric("humid", 59.0, 20.0),
            Numeric("wind_speed", 11.0, 5.5),
            Numeric("precip", 0.0, 0.02, log=True),
            Numeric("pressure", 1018.0, 7.5),
            Numeric("visib", 9.3, 2.0),
        ),
        crosses=(("origin", "sched_dep_hour", 96), ("carrier", "origin", 64)),
    )


def _unique_features(config: ModelConfig) -> dict[str, tuple[str, float | str]]:
    """{feature name: (dtype, default)}; a feature used both ways (hour) is parsed once."""
    out: dict[str, tuple[str, float | str]] = {}
    for f in config.numeric:
        out[f.name] = (f.dtype, f.default)
    for f in config.categorical:
        if f.name in out and out[f.name][0] != f.dtype:
            raise ValueError(f"feature {f.name} used with two dtypes")
        out.setdefault(f.name, (f.dtype, "" if f.dtype == "string" else -1))
    return out


def feature_spec(config: ModelConfig | None = None) -> dict[str, tf.io.FixedLenFeature]:
    """tf.io.parse_example spec of the model's inputs (label, id and weight not included).

    Every feature is a single value of shape [1]; a missing value parses as its default (numeric: the centre).
    """
    config = config or flights_config()
    spec = {}
    for name, (dtype, default) in _unique_features(config).items():
        if dtype == "string":
            spec[name] = tf.io.FixedLenFeature([1], tf.string, default_value=default)
        elif dtype == "int64":
            spec[name] = tf.io.FixedLenFeature([1], tf.int64, default_value=int(round(float(default))))
        else:
            spec[name] = tf.io.FixedLenFeature([1], tf.float32, default_value=float(default))
    return spec


def _label_spec(config: ModelConfig) -> tf.io.FixedLenFeature:
    dtype = tf.int64 if config.task == "binary" else tf.float32
    return tf.io.FixedLenFeature([1], dtype)


def build_model(config: ModelConfig | None = None, seed: int = 0) -> keras.Model:
    """A compiled functional tf_keras wide-and-deep model taking a dict of [batch, 1] feature tensors."""
    config = config or flights_config()
    keras.utils.set_random_seed(seed)
    inputs = {
        name: keras.Input(shape=(1,), name=name, dtype=dtype)
        for name, (dtype, _) in _unique_features(config).items()
    }
    ids, wide, deep = {}, [], []
    for f in config.categorical:
        if f.vocabulary:
            lookup = keras.layers.StringLookup if f.dtype == "string" else keras.layers.IntegerLookup
            ids[f.name] = lookup(vocabulary=list(f.vocabulary), num_oov_indices=1, name=f"{f.name}_id")(
                inputs[f.name]
            )
        else:
            ids[f.name] = keras.layers.Hashing(num_bins=f.hash_bins, name=f"{f.name}_id")(inputs[f.name])
        wide.append(
            keras.layers.CategoryEncoding(f.size, output_mode="one_hot", name=f"{f.name}_onehot")(ids[f.name])
        )
        embedded = keras.layers.Embedding(f.size, f.embedding_dim, name=f"{f.name}_embedding")(ids[f.name])
        deep.append(keras.layers.Flatten(name=f"{f.name}_flat")(embedded))
    for a, b, bins in config.crosses:
        crossed = keras.layers.HashedCrossing(num_bins=bins, name=f"{a}_x_{b}")((ids[a], ids[b]))
        wide.append(
            keras.layers.CategoryEncoding(bins, output_mode="one_hot", name=f"{a}_x_{b}_onehot")(crossed)
        )
    if config.numeric:
        columns = []
        for f in config.numeric:
            x = keras.layers.Lambda(lambda t: tf.cast(t, tf.float32), name=f"{f.name}_float")(inputs[f.name])
            if f.log:
                x = keras.layers.Lambda(lambda t: tf.math.log1p(tf.maximum(t, 0.0)), name=f"{f.name}_log")(x)
            columns.append(x)
        numeric = keras.layers.Concatenate(name="numeric")(columns)
        deep.append(
            keras.layers.Normalization(
                mean=[f.center for f in config.numeric],
                variance=[f.scale**2 for f in config.numeric],
                name="standardise",
            )(numeric)
        )
    h = keras.layers.Concatenate(name="deep_input")(deep)
    for i, units in enumerate(config.hidden_units):
        h = keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")(h)
    head_input = keras.layers.Concatenate(name=HEAD_INPUT_LAYER)([*wide, h])
    binary = config.task == "binary"
    output = keras.layers.Dense(1, activation="sigmoid" if binary else None, name=OUTPUT_LAYER)(head_input)
    model = keras.Model(inputs=inputs, outputs=output, name="wide_and_deep")
    _compile(model, config)
    return model


def _compile(model: keras.Model, config: ModelConfig) -> None:
    if config.task == "binary":
        loss = keras.losses.BinaryCrossentropy()
        metrics = [keras.metrics.AUC(name="auc"), keras.metrics.BinaryCrossentropy(name="log_loss")]
    else:
        loss = keras.losses.MeanSquaredError()
        metrics = [keras.metrics.RootMeanSquaredError(name="rmse")]
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss, weighted_metrics=metrics)


def _files(file_pattern: str | Sequence[str]) -> list[str]:
    patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
    files = sorted({f for p in patterns for f in tf.io.gfile.glob(p)})
    if not files:
        raise FileNotFoundError(f"no files match {patterns}")
    return files


def make_dataset(
    file_pattern: str | Sequence[str],
    batch_size: int = 256,
    weight_feature: str | None = None,
    config: ModelConfig | None = None,
    shuffle: bool = False,
    seed: int = 0,
    repeat: bool = False,
) -> tf.data.Dataset:
    """Batches of (features, label) or, with `weight_feature`, (features, label, weight) from TFRecords.

    Files are gzip-compressed when their names end in `.gz`. An example without the weight feature weighs 1
    (uncurated data). Labels and weights have shape [batch, 1].
    """
    config = config or flights_config()
    files = _files(file_pattern)
    compression = "GZIP" if all(f.endswith(".gz") for f in files) else ""
    if compression == "" and any(f.endswith(".gz") for f in files):
        raise ValueError(f"mixed gzip and plain files in {file_pattern}")
    spec = dict(feature_spec(config))
    spec[config.label] = _label_spec(config)
    if weight_feature:
        spec[weight_feature] = tf.io.FixedLenFeature([1], tf.float32, default_value=1.0)
    ds = tf.data.TFRecordDataset(files, compression_type=compression or None, num_parallel_reads=2)
    if shuffle:
        ds = ds.shuffle(20_000, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size)

    def split(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        label = parsed.pop(config.label)
        label = tf.cast(label, tf.float32)
        if weight_feature:
            weight = parsed.pop(weight_feature)
            return parsed, label, weight
        return parsed, label

    return ds.map(split, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def weight_sum(
    file_pattern: str | Sequence[str], weight_feature: str | None, config: ModelConfig | None = None
) -> tuple[int, float]:
    """(number of examples, sum of their weights) over the files, as training sees them.

    An example without `weight_feature` weighs 1; with `weight_feature` None every example weighs 1.
    """
    n, total = 0, 0.0
    for batch in make_dataset(file_pattern, 4096, weight_feature, config):
        w = batch[2] if weight_feature else tf.ones_like(batch[1])
        n += int(tf.shape(w)[0])
        total += float(tf.reduce_sum(tf.cast(w, tf.float64)))
    return n, total


def train(
    model: keras.Model,
    train_pattern: str | Sequence[str],
    weight_feature: str | None = WEIGHT_FEATURE,
    epochs: int = 2,
    batch_size: int = 256,
    steps: int | None = None,
    validation_pattern: str | Sequence[str] | None = None,
    config: ModelConfig | None = None,
    seed: int = 0,
    verbose: int = 0,
) -> dict[str, list[float]]:
    """Fit on the files, weighting each example's loss by `weight_feature` (None: unweighted).

    `steps`: total optimiser steps instead of `epochs` passes (the data repeats). Returns Keras' history.
    """
    config = config or flights_config()
    ds = make_dataset(
        train_pattern, batch_size, weight_feature, config, shuffle=True, seed=seed, repeat=bool(steps)
    )
    validation = make_dataset(validation_pattern, 4096, None, config) if validation_pattern else None
    if steps:
        history = model.fit(ds, epochs=1, steps_per_epoch=steps, validation_data=validation, verbose=verbose)
    else:
        history = model.fit(ds, epochs=epochs, validation_data=validation, verbose=verbose)
    return history.history


def evaluate(
    model: keras.Model, file_pattern, config: ModelConfig | None = None, weight_feature: str | None = None
) -> dict[str, float]:
    """Metrics of the model on the files (binary: auc, log_loss; regression: rmse), weighted by
    `weight_feature` when given (on a curated split: an estimate of the metric on the whole span)."""
    config = config or flights_config()
    ds = make_dataset(file_pattern, 4096, weight_feature, config)
    return model.evaluate(ds, verbose=0, return_dict=True)


def export(model: keras.Model, serving_dir: str, config: ModelConfig | None = None) -> str:
    """Export a serving SavedModel that records forward passes (prediction, hidden_norm, example_id).

    Also keeps the Keras weights and the model config under `assets.extra/`, for :func:`load_weights`.
    """
    from tfx_curator.serving import recorder

    config = config or flights_config()
    recorder.export_recording_model(
        model, serving_dir, feature_spec(config), id_feature=config.id_feature, hidden_layer=HEAD_INPUT_LAYER
    )
    model.save_weights(os.path.join(serving_dir, KERAS_WEIGHTS_SUBDIR, "weights"))
    with tf.io.gfile.GFile(os.path.join(serving_dir, MODEL_CONFIG_FILE), "w") as f:
        f.write(config.to_json())
    return serving_dir


def load_weights(model: keras.Model, serving_dir: str) -> keras.Model:
    """Warm start: load the weights a served model was exported with (see :func:`export`) into `model`."""
    prefix = os.path.join(serving_dir, KERAS_WEIGHTS_SUBDIR, "weights")
    if not tf.io.gfile.exists(prefix + ".index"):
        raise FileNotFoundError(
            f"{serving_dir} holds no Keras weights ({prefix}.index): not exported by export()"
        )
    model.load_weights(prefix).assert_existing_objects_matched()
    return model


def load_config(serving_dir: str) -> ModelConfig | None:
    """The ModelConfig a served model was exported with (None when absent)."""
    path = os.path.join(serving_dir, MODEL_CONFIG_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return ModelConfig.from_json(f.read())
