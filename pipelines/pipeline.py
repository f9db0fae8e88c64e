"""One continuous-training step as a TFX pipeline.

    new span ──► ImportExampleGen(train) ──┬──► BulkInferrer(served model) ──┐   (or production records
                                           │                                 │    via an Importer)
                                           └──────────► Curator ◄────────────┘
                                                          │ curated, weighted examples + report
                      ImportSchemaGen ──► StatisticsGen ──► ExampleValidator
                                                          ▼
                             served model ──(warm start)─► Trainer (sample_weight) ──► Evaluator ──► Pusher
                                                                                         ▲
    next span ──► ImportExampleGen(eval) ────────────────────────────────────────────────┘ (unweighted)

Without a served model and without forward records (`bootstrap`) there is nothing to curate: the Trainer
trains on the whole new span. Run a step with `LocalDagRunner().run(create_pipeline(...))`; the demo
(demo.py) chains steps, each serving the model the previous step pushed.

Served models are SavedModels (e.g. a Pusher's versioned folder). TFX reads a Model artifact's SavedModel
from `<uri>/Format-Serving`, so a plain SavedModel folder is staged (copied once) under
`<pipeline_root>/_served_models/` when the pipeline is created; a folder that already has `Format-Serving`
(a Trainer's output) is imported as is.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence

from tfx import v1 as tfx
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils

from tfx_curator.components.curator.component import CurationReport, Curator
from tfx_curator.data import nycflights
from tfx_curator.pipelines import model as model_lib
from tfx_curator.schemas import FLIGHTS_SCHEMA, schema_file

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAINER_RUN_FN = "tfx_curator.pipelines.trainer_module.run_fn"
SERVING_FORMAT_DIR = "Format-Serving"
DEFAULT_SPAN_PATTERN = "*.tfrecord*"

# Component ids: outputs land in <pipeline_root>/<id>/<output key>/<execution id>/.
NEW_SPAN_GEN = "NewSpanExampleGen"
NEXT_SPAN_GEN = "NextSpanExampleGen"
SCHEMA_GEN = "ImportSchemaGen"
SERVED_MODEL = "ServedModel"
FORWARD_RECORDS = "ForwardRecords"
PREVIOUS_REPORT = "PreviousCurationReport"
BULK_INFERRER = "BulkInferrer"
CURATOR = "Curator"
STATISTICS_GEN = "StatisticsGen"
EXAMPLE_VALIDATOR = "ExampleValidator"
TRAINER = "Trainer"
EVALUATOR = "Evaluator"
PUSHER = "Pusher"

# Evaluator metrics (TFMA native, unweighted) and their names in the evaluation output.
EVAL_METRICS = ("ExampleCount", "AUC", "BinaryCrossEntropy", "Calibration", "MeanLabel", "MeanPrediction")
METRIC_NAMES = {
    "example_count": "example_count",
    "auc": "auc",
    "log_loss": "binary_crossentropy",
    "calibration": "calibration",
    "mean_label": "mean_label",
    "mean_prediction": "mean_prediction",
}

_CODE_SHIPPING_FLAGS = (
    "--setup_file",
    "--extra_package",
    "--sdk_container_image",
    "--worker_harness_container_image",
)


# --------------------------------------------------------------------------------------------------
# Beam arguments
# --------------------------------------------------------------------------------------------------


def direct_beam_args(running_mode: str = "in_memory", workers: int | None = None) -> list[str]:
    """DirectRunner args. in_memory is the default: on 2 cores multi_processing was never faster here and
    used 2-2.7x the memory."""
    if running_mode not in ("in_memory", "multi_threading", "multi_processing"):
        raise ValueError(f"unknown direct_running_mode {running_mode!r}")
    args = ["--runner=DirectRunner", f"--direct_running_mode={running_mode}"]
    if workers or running_mode != "in_memory":
        args.append(f"--direct_num_workers={workers or os.cpu_count() or 1}")
    return args


def _flag_value(args: Sequence[str], flag: str) -> str | None:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def with_code_shipping(beam_pipeline_args: Sequence[str], setup_file: str | None = None) -> list[str]:
    """Beam args that ship this package to remote workers.

    TFX's BaseBeamExecutor ships only TFX itself; the Curator's DoFns live in `tfx_curator`, so any runner
    other than DirectRunner gets `--setup_file=<repo>/setup.py` unless the args already carry
    `--setup_file`, `--extra_package` or a worker container image with the package installed.
    """
    args = list(beam_pipeline_args)
    runner = (_flag_value(args, "--runner") or "DirectRunner").lower()
    if runner in ("directrunner", "direct") or any(a.startswith(_CODE_SHIPPING_FLAGS) for a in args):
        return args
    setup_file = setup_file or os.path.join(REPO_ROOT, "setup.py")
    if not os.path.exists(setup_file):
        raise FileNotFoundError(
            f"runner {runner} needs this package on its workers: pass --setup_file, --extra_package or "
            f"--sdk_container_image in beam_pipeline_args ({setup_file} not found)"
        )
    return [*args, f"--setup_file={setup_file}"]


# --------------------------------------------------------------------------------------------------
# Inputs: served model, forward records
# --------------------------------------------------------------------------------------------------


def served_model_uri(saved_model_dir: str, staging_root: str) -> str:
    """A Model artifact URI for `saved_model_dir`: itself when it has `Format-Serving/`, else a staged copy."""
    if fileio.exists(os.path.join(saved_model_dir, SERVING_FORMAT_DIR, "saved_model.pb")):
        return saved_model_dir
    if not fileio.exists(os.path.join(saved_model_dir, "saved_model.pb")):
        raise FileNotFoundError(f"no SavedModel in {saved_model_dir} (nor in its {SERVING_FORMAT_DIR}/)")
    key = hashlib.sha1(os.path.abspath(saved_model_dir).encode()).hexdigest()[:10]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(os.path.normpath(saved_model_dir)))
    uri = os.path.join(staging_root, "_served_models", f"{name}-{key}")
    target = os.path.join(uri, SERVING_FORMAT_DIR)
    if not fileio.exists(os.path.join(target, "saved_model.pb")):
        if fileio.exists(target):
            fileio.rmtree(target)
        io_utils.copy_dir(saved_model_dir, target)
    return uri


def latest_pushed_model(serving_dir: str) -> str | None:
    """The newest model version a Pusher wrote to `serving_dir` (numbered folders), None when empty."""
    if not fileio.exists(serving_dir):
        return None
    versions = [v.rstrip("/") for v in fileio.listdir(serving_dir) if v.rstrip("/").isdigit()]
    return os.path.join(serving_dir, max(versions, key=int)) if versions else None


def record_splits(forward_records_dir: str) -> list[str]:
    """Split names of a forward-records folder laid out like an Examples artifact (`Split-<name>/`)."""
    names = sorted(
        d.rstrip("/")[len("Split-") :] for d in fileio.listdir(forward_records_dir) if d.startswith("Split-")
    )
    if not names:
        raise ValueError(
            f"{forward_records_dir} has no Split-<name>/ folders: put the forward-record TFRecord files in "
            f"{forward_records_dir}/Split-records/ (any split name)"
        )
    return names


# --------------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------------


def eval_config(label_key: str = nycflights.LABEL_FEATURE, min_auc: float | None = None):
    """TFMA config: the recorder's serving signature, unweighted AUC, log loss, calibration, counts."""
    import tensorflow_model_analysis as tfma

    thresholds = {}
    if min_auc is not None:
        thresholds["AUC"] = tfma.MetricThreshold(
            value_threshold=tfma.GenericValueThreshold(lower_bound={"value": float(min_auc)})
        )
    metrics = [tfma.MetricConfig(class_name=name, threshold=thresholds.get(name)) for name in EVAL_METRICS]
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(signature_name="serving_default", label_key=label_key, prediction_key="prediction")
        ],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(metrics=metrics)],
    )


def _example_gen(span_dir: str, split: str, pattern: str, component_id: str):
    """ImportExampleGen of one span as one split (one hash bucket: no train/eval re-split)."""
    return tfx.components.ImportExampleGen(
        input_base=span_dir,
        input_config=tfx.proto.Input(splits=[tfx.proto.Input.Split(name=split, pattern=pattern)]),
        output_config=tfx.proto.Output(
            split_config=tfx.proto.SplitConfig(
                splits=[tfx.proto.SplitConfig.Split(name=split, hash_buckets=1)]
            )
        ),
    ).with_id(component_id)


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    new_span_dir: str,
    next_span_dir: str,
    *,
    serving_dir: str,
    served_model_dir: str | None = None,
    forward_records_dir: str | None = None,
    previous_report_dir: str | None = None,
    metadata_path: str | None = None,
    budget: float = 0.1,
    curator_options: dict | None = None,
    beam_pipeline_args: Sequence[str] | None = None,
    epochs: int = 2,
    train_steps: int | None = None,
    batch_size: int = 256,
    warm_start: bool = True,
    min_auc: float | None = 0.5,
    span_pattern: str = DEFAULT_SPAN_PATTERN,
    schema_path: str | None = None,
    enable_cache: bool = False,
) -> tfx.dsl.Pipeline:
    """A TFX pipeline for one continuous-training step.

    Args:
      pipeline_name, pipeline_root: as for any TFX pipeline.
      new_span_dir: folder of the span the served model just served (labelled tf.Example TFRecords matching
        `span_pattern`); curated, then trained on.
      next_span_dir: folder of the following span; the Evaluator scores the new model on it, unweighted.
      serving_dir: the Pusher's base directory (versioned SavedModels), used when the model is blessed.
      served_model_dir: the model serving the new span (a SavedModel folder, e.g. a Pusher version, or a
        Model artifact folder with `Format-Serving/`). BulkInferrer replays its forward passes on the new span
        unless `forward_records_dir` is given; the Trainer warm-starts from it when `warm_start`.
      forward_records_dir: production forward records (plain format or PredictionLogs, see
        docs/forward_record_format.md) laid out as `Split-<name>/*` and imported as an Examples artifact;
        set `curator_options["record_format"]` to match ("plain" by default).
      previous_report_dir: the previous step's CurationReport folder; the Curator then reports the served
        model's drift since that span (imported as the Curator's `previous_report`).
      metadata_path: the MLMD sqlite file (default `<pipeline_root>/metadata.sqlite`).
      budget, curator_options: the Curator's budget and other CurationOptions (options.py).
      beam_pipeline_args: default DirectRunner in_memory; other runners get --setup_file (with_code_shipping).
      epochs, train_steps, batch_size: Trainer settings (train_steps, when set, wins over epochs).
      warm_start: continue training from the served model's weights (it must come from model.export()).
      min_auc: the Evaluator blesses (and the Pusher pushes) only a model with at least this AUC on the next
        span; None pushes every model.

    Without `served_model_dir` and `forward_records_dir` the step is a bootstrap: no Curator, the Trainer
    trains on the whole new span.
    """
    import tensorflow_data_validation as tfdv

    options = dict(curator_options or {})
    options.setdefault("budget", budget)
    weight_feature = options.get("weight_feature", model_lib.WEIGHT_FEATURE)
    curate = served_model_dir is not None or forward_records_dir is not None

    new_span = _example_gen(new_span_dir, "train", span_pattern, NEW_SPAN_GEN)
    next_span = _example_gen(next_span_dir, "eval", span_pattern, NEXT_SPAN_GEN)
    schema = tfx.components.ImportSchemaGen(schema_file=schema_path or schema_file(FLIGHTS_SCHEMA)).with_id(
        SCHEMA_GEN
    )
    components = [new_span, next_span, schema]

    served_model = None
    if served_model_dir is not None:
        served_model = tfx.dsl.Importer(
            source_uri=served_model_uri(served_model_dir, pipeline_root),
            artifact_type=tfx.types.standard_artifacts.Model,
        ).with_id(SERVED_MODEL)
        components.append(served_model)

    training_examples = new_span.outputs["examples"]
    stats_options = None
    previous_report = None
    if curate and previous_report_dir is not None:
        previous = tfx.dsl.Importer(source_uri=previous_report_dir, artifact_type=CurationReport).with_id(
            PREVIOUS_REPORT
        )
        components.append(previous)
        previous_report = previous.outputs["result"]
    if curate:
        if forward_records_dir is not None:
            records = tfx.dsl.Importer(
                source_uri=forward_records_dir,
                artifact_type=tfx.types.standard_artifacts.Examples,
                properties={
                    "split_names": artifact_utils.encode_split_names(record_splits(forward_records_dir))
                },
            ).with_id(FORWARD_RECORDS)
            curator = Curator(
                examples=new_span.outputs["examples"],
                forward_records=records.outputs["result"],
                previous_report=previous_report,
                **options,
            ).with_id(CURATOR)
            components += [records, curator]
        else:
            inferrer = tfx.components.BulkInferrer(
                examples=new_span.outputs["examples"],
                model=served_model.outputs["result"],
                data_spec=tfx.proto.DataSpec(example_splits=["train"]),
                model_spec=tfx.proto.ModelSpec(model_signature_name=["serving_default"]),
            ).with_id(BULK_INFERRER)
            curator = Curator(
                examples=new_span.outputs["examples"],
                inference_result=inferrer.outputs["inference_result"],
                previous_report=previous_report,
                **options,
            ).with_id(CURATOR)
            components += [inferrer, curator]
        training_examples = curator.outputs["curated_examples"]
        # Statistics of the curated split as the Trainer sees it: weighted back to the raw data.
        stats_options = tfdv.StatsOptions(weight_feature=weight_feature)

    statistics = tfx.components.StatisticsGen(
        examples=training_examples, schema=schema.outputs["schema"], stats_options=stats_options
    ).with_id(STATISTICS_GEN)
    validator = tfx.components.ExampleValidator(
        statistics=statistics.outputs["statistics"], schema=schema.outputs["schema"]
    ).with_id(EXAMPLE_VALIDATOR)

    custom_config = {
        "weight_feature": weight_feature if curate else None,
        "epochs": epochs,
        "batch_size": batch_size,
    }
    trainer = tfx.components.Trainer(
        run_fn=TRAINER_RUN_FN,
        examples=training_examples,
        schema=schema.outputs["schema"],
        base_model=served_model.outputs["result"] if (served_model and warm_start) else None,
        # The Trainer's own evaluation: the training split, weighted (an estimate over the whole new span).
        train_args=tfx.proto.TrainArgs(splits=["train"], num_steps=train_steps or 0),
        eval_args=tfx.proto.EvalArgs(splits=["train"]),
        custom_config=custom_config,
    ).with_id(TRAINER)
    evaluator = tfx.components.Evaluator(
        examples=next_span.outputs["examples"],
        model=trainer.outputs["model"],
        example_splits=["eval"],
        eval_config=eval_config(min_auc=min_auc),
    ).with_id(EVALUATOR)
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"] if min_auc is not None else None,
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_dir)
        ),
    ).with_id(PUSHER)
    components += [statistics, validator, trainer, evaluator, pusher]

    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=components,
        enable_cache=enable_cache,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            metadata_path or os.path.join(pipeline_root, "metadata.sqlite")
        ),
        beam_pipeline_args=with_code_shipping(
            direct_beam_args() if beam_pipeline_args is None else beam_pipeline_args
        ),
    )


# --------------------------------------------------------------------------------------------------
# Reading a finished step's outputs
# --------------------------------------------------------------------------------------------------


def output_uri(pipeline_root: str, component_id: str, output_key: str) -> str | None:
    """The newest output folder of a component under `pipeline_root` (highest execution id), or None."""
    base = os.path.join(pipeline_root, component_id, output_key)
    if not fileio.exists(base):
        return None
    runs = [d.rstrip("/") for d in fileio.listdir(base) if d.rstrip("/").isdigit()]
    return os.path.join(base, max(runs, key=int)) if runs else None


def read_eval_metrics(evaluation_uri: str) -> dict[str, float]:
    """The Evaluator's overall-slice metrics: example_count, auc, log_loss, calibration, mean_label, ..."""
    import tensorflow_model_analysis as tfma

    values = {}
    for slice_metrics in tfma.load_metrics(evaluation_uri):
        if slice_metrics.slice_key.single_slice_keys:
            continue
        for kv in slice_metrics.metric_keys_and_values:
            values[kv.key.name] = kv.value.double_value.value
    return {ours: values[theirs] for ours, theirs in METRIC_NAMES.items() if theirs in values}


def is_blessed(blessing_uri: str | None) -> bool:
    return bool(blessing_uri) and fileio.exists(os.path.join(blessing_uri, "BLESSED"))
