"""Pipelines: the demo model, the Trainer module, create_pipeline, and real TFX runs (LocalDagRunner).

Fast: model.py on real flights (weighted datasets, training, recorder export, warm start), run_fn with FnArgs,
Beam args and pipeline wiring. Slow (@pytest.mark.slow, real components on DirectRunner):
  - ImportExampleGen -> BulkInferrer (recorder-exported model) -> Curator -> StatisticsGen (issue 5);
  - a bootstrap step then a curated step of create_pipeline: weighted Trainer, Evaluator, Pusher (issue 6);
  - embedding: a Curator added between ExampleGen and Trainer of an existing DAG (issue 6 part 5).

Tolerance for sums of Horvitz-Thompson weights: with independent (Poisson) sampling at probabilities p_i,
S = sum over kept of 1/p_i is unbiased for the number of examples N, with Var(S) = sum_i (1/p_i - 1).
sum over kept of w (w - 1) (w = 1/p) is an unbiased estimate of that variance (E[1{kept} w (w - 1)] =
1/p - 1), so we require |S - N| <= 4 * sqrt(sum_kept w (w - 1)) (+ 1 for float rounding): a correct
curator fails this with probability ~1e-4.
"""

from __future__ import annotations

import glob
import json
import math
import os

import helpers
import numpy as np
import pytest
import tensorflow as tf

from tfx_curator.pipelines import model as model_lib
from tfx_curator.pipelines import trainer_module

WEIGHT = model_lib.WEIGHT_FEATURE


def ht_tolerance(weights) -> float:
    """4 standard deviations of a Horvitz-Thompson count under Poisson sampling (see the module doc)."""
    w = np.asarray(weights, dtype=np.float64)
    return 4.0 * math.sqrt(float(np.sum(w * (w - 1.0)))) + 1.0


def with_weights(src: str, dst: str, weights) -> str:
    """Copy a TFRecord file adding `sample_weight` to each example (None: leave that example without)."""
    out = []
    for raw, w in zip(helpers.read_tfrecords(src), weights):
        if w is not None:
            raw = (
                raw
                + tf.train.Example(
                    features=tf.train.Features(
                        feature={WEIGHT: tf.train.Feature(float_list=tf.train.FloatList(value=[w]))}
                    )
                ).SerializeToString()
            )
        out.append(raw)
    return helpers.write_tfrecords(dst, out)


def kept_weights(pattern: str) -> dict[bytes, float]:
    out = {}
    for raw in helpers.read_tfrecords(pattern):
        f = tf.train.Example.FromString(raw).features.feature
        out[f["example_id"].bytes_list.value[0]] = f[WEIGHT].float_list.value[0]
    return out


@pytest.fixture(scope="module")
def served_model(flights_spans, tmp_path_factory):
    """The demo model trained one epoch on span 1 (1500 flights), exported with the recorder."""
    model = model_lib.build_model()
    history = model_lib.train(model, flights_spans[0].path, weight_feature=None, epochs=2)
    export_dir = str(tmp_path_factory.mktemp("served") / "1")
    model_lib.export(model, export_dir)
    return model, export_dir, history


# --------------------------------------------------------------------------------------------------
# model.py
# --------------------------------------------------------------------------------------------------


def test_feature_spec_covers_model_inputs_and_defaults_standardise_to_zero():
    config = model_lib.flights_config()
    spec = model_lib.feature_spec(config)
    assert set(spec) == set(config.feature_names)
    assert "month" not in spec and config.label not in spec and WEIGHT not in spec
    assert spec["carrier"].dtype == tf.string and spec["sched_dep_hour"].dtype == tf.int64
    assert model_lib.schema_vocabulary("origin") == ("EWR", "JFK", "LGA")
    for f in config.numeric:
        if f.dtype == "float32":
            x = math.log1p(spec[f.name].default_value) if f.log else spec[f.name].default_value
            assert (x - f.center) / f.scale == pytest.approx(0.0, abs=1e-6), f.name
    assert model_lib.ModelConfig.from_json(config.to_json()) == config


def test_weighted_dataset_yields_weights_and_defaults_missing_weight_to_one(flights_spans, tmp_path):
    n = 300
    weights = [None if i % 3 == 0 else float(i % 7 + 1) for i in range(n)]
    src = str(tmp_path / "head.gz")
    helpers.write_tfrecords(src, helpers.read_tfrecords(flights_spans[0].path)[:n])
    path = with_weights(src, str(tmp_path / "w" / "data.gz"), weights)

    batches = list(model_lib.make_dataset(path, batch_size=128, weight_feature=WEIGHT))
    assert [len(b) for b in batches] == [3] * 3
    features, label, weight = batches[0]
    assert label.shape == (128, 1) and weight.shape == (128, 1) and features["carrier"].shape == (128, 1)
    got = np.concatenate([b[2].numpy()[:, 0] for b in batches])
    np.testing.assert_array_equal(got, [1.0 if w is None else w for w in weights])
    # unweighted: (features, label) only
    assert len(next(iter(model_lib.make_dataset(path, batch_size=8)))) == 2
    assert model_lib.weight_sum(path, WEIGHT) == (n, pytest.approx(sum(w or 1.0 for w in weights)))
    assert model_lib.weight_sum(path, None) == (n, n)
    with pytest.raises(FileNotFoundError):
        model_lib.make_dataset(str(tmp_path / "nothing-*.gz"))


def test_model_trains_on_flights_and_exports_forward_record_outputs(served_model, flights_spans):
    model, export_dir, history = served_model
    assert history["loss"][-1] < history["loss"][0]
    # better than chance on a later month it never saw
    assert model_lib.evaluate(model, flights_spans[1].path)["auc"] > 0.55

    raw = helpers.read_tfrecords(flights_spans[1].path)[:64]
    outputs = tf.saved_model.load(export_dir).signatures["serving_default"](examples=tf.constant(raw))
    features = tf.io.parse_example(raw, model_lib.feature_spec())
    np.testing.assert_allclose(outputs["prediction"].numpy(), model(features).numpy(), rtol=1e-5, atol=1e-6)
    head_input = model_lib.keras.Model(model.input, model.get_layer(model_lib.HEAD_INPUT_LAYER).output)
    np.testing.assert_allclose(
        outputs["hidden_norm"].numpy()[:, 0], np.linalg.norm(head_input(features).numpy(), axis=1), rtol=1e-5
    )
    ids = [tf.train.Example.FromString(r).features.feature["example_id"].bytes_list.value[0] for r in raw]
    assert outputs["example_id"].numpy()[:, 0].tolist() == ids

    # warm start: a fresh model with the exported weights predicts the same
    fresh = model_lib.build_model(model_lib.load_config(export_dir), seed=5)
    model_lib.load_weights(fresh, export_dir)
    np.testing.assert_allclose(fresh(features).numpy(), model(features).numpy(), rtol=1e-6)


def test_weighted_training_weights_the_loss(served_model, flights_spans, tmp_path):
    """A weight of 0 removes an example from the loss: with weight 0 on every positive the model learns to
    predict (almost) no positives; unweighted (the served model, same span) it predicts about the positive
    rate."""
    src = flights_spans[0].path
    labels = [
        tf.train.Example.FromString(r).features.feature["label"].int64_list.value[0]
        for r in helpers.read_tfrecords(src)
    ]
    path = with_weights(src, str(tmp_path / "w.gz"), [0.0 if y else 1.0 for y in labels])
    weighted = model_lib.build_model(seed=0)
    model_lib.train(weighted, path, weight_feature=WEIGHT, epochs=3, batch_size=64)
    x = next(iter(model_lib.make_dataset(src, batch_size=1500)))[0]
    assert float(np.mean(weighted(x).numpy())) < 0.05
    unweighted = served_model[0]
    assert float(np.mean(unweighted(x).numpy())) == pytest.approx(flights_spans[0].positive_rate, abs=0.08)


@pytest.mark.slow
def test_run_fn_trains_weighted_warm_started_and_writes_summary(served_model, flights_spans, tmp_path):
    from tfx.components.trainer.fn_args_utils import FnArgs

    _, export_dir, _ = served_model
    n = 500
    weights = [float(1 + i % 4) for i in range(n)]
    src = str(tmp_path / "head.gz")
    helpers.write_tfrecords(src, helpers.read_tfrecords(flights_spans[1].path)[:n])
    train = with_weights(src, str(tmp_path / "Split-train" / "data.gz"), weights)
    fn_args = FnArgs(
        train_files=[train],
        eval_files=[train],
        serving_model_dir=str(tmp_path / "serving"),
        model_run_dir=str(tmp_path / "run"),
        custom_config={"warm_start_from": export_dir, "epochs": 1},
    )
    trainer_module.run_fn(fn_args)
    summary = trainer_module.read_summary(str(tmp_path / "run"))
    assert summary["weight_feature"] == WEIGHT and summary["warm_start_from"] == export_dir
    assert summary["examples"] == n and summary["weight_sum"] == pytest.approx(sum(weights))
    assert summary["backward_passes"] == n and summary["eval_weighted_by"] == WEIGHT
    assert set(summary["eval_metrics"]) >= {"auc", "log_loss"}
    signature = tf.saved_model.load(str(tmp_path / "serving")).signatures["serving_default"]
    assert set(signature.structured_outputs) == {"prediction", "hidden_norm", "example_id"}
    with pytest.raises(ValueError, match="unknown trainer custom_config"):
        trainer_module.training_config({"epoch": 3})


# --------------------------------------------------------------------------------------------------
# pipeline.py without running it
# --------------------------------------------------------------------------------------------------


def test_beam_args_ship_the_package_to_non_direct_runners():
    from tfx_curator.pipelines import pipeline

    assert pipeline.direct_beam_args() == ["--runner=DirectRunner", "--direct_running_mode=in_memory"]
    assert "--direct_num_workers=2" in pipeline.direct_beam_args("multi_processing", 2)
    direct = pipeline.direct_beam_args()
    assert pipeline.with_code_shipping(direct) == direct
    flink = pipeline.with_code_shipping(["--runner=FlinkRunner", "--flink_master=localhost:8081"])
    assert flink[-1] == f"--setup_file={os.path.join(pipeline.REPO_ROOT, 'setup.py')}"
    assert os.path.exists(flink[-1].split("=", 1)[1])
    image = ["--runner", "DataflowRunner", "--sdk_container_image=gcr.io/x/curator:1"]
    assert pipeline.with_code_shipping(image) == image
    with pytest.raises(ValueError):
        pipeline.direct_beam_args("threads")


def test_create_pipeline_wiring_for_bootstrap_bulk_inference_and_production_records(served_model, tmp_path):
    from tfx_curator.pipelines import pipeline as P

    _, export_dir, _ = served_model
    common = dict(serving_dir=str(tmp_path / "serving"), metadata_path=str(tmp_path / "m.sqlite"))
    boot = P.create_pipeline("b", str(tmp_path / "root"), "/data/span-01", "/data/span-02", **common)
    ids = [c.id for c in boot.components]
    assert P.CURATOR not in ids and P.BULK_INFERRER not in ids and P.SERVED_MODEL not in ids
    assert {P.TRAINER, P.EVALUATOR, P.PUSHER, P.STATISTICS_GEN, P.EXAMPLE_VALIDATOR} <= set(ids)

    step = P.create_pipeline(
        "s", str(tmp_path / "root"), "/d/1", "/d/2", served_model_dir=export_dir, budget=0.05, **common
    )
    by_id = {c.id: c for c in step.components}
    assert {P.SERVED_MODEL, P.BULK_INFERRER, P.CURATOR} <= set(by_id)
    assert by_id[P.CURATOR].exec_properties["budget"] == 0.05
    assert by_id[P.CURATOR].exec_properties["record_format"] == "predictionlog"
    trainer = by_id[P.TRAINER]
    assert trainer.inputs["examples"].producer_component_id == P.CURATOR
    assert trainer.inputs["base_model"].producer_component_id == P.SERVED_MODEL
    assert json.loads(trainer.exec_properties["custom_config"])["weight_feature"] == WEIGHT
    # the served SavedModel was staged where TFX looks for it
    staged = by_id[P.SERVED_MODEL].exec_properties["artifact_uri"]
    assert os.path.exists(os.path.join(staged, "Format-Serving", "saved_model.pb"))
    assert P.served_model_uri(export_dir, str(tmp_path / "root")) == staged
    assert P.served_model_uri(staged, "/unused") == staged

    records_dir = tmp_path / "records"
    (records_dir / "Split-records").mkdir(parents=True)
    logs = P.create_pipeline(
        "r", str(tmp_path / "root"), "/d/1", "/d/2", forward_records_dir=str(records_dir), **common
    )
    by_id = {c.id: c for c in logs.components}
    assert P.BULK_INFERRER not in by_id and P.FORWARD_RECORDS in by_id
    assert by_id[P.CURATOR].inputs["forward_records"].producer_component_id == P.FORWARD_RECORDS
    assert "base_model" not in by_id[P.TRAINER].inputs or by_id[P.TRAINER].inputs["base_model"] is None
    assert P.PREVIOUS_REPORT not in by_id
    # the previous step's CurationReport feeds the Curator's optional previous_report channel
    chained = P.create_pipeline(
        "r",
        str(tmp_path / "root"),
        "/d/1",
        "/d/2",
        forward_records_dir=str(records_dir),
        previous_report_dir=str(tmp_path / "old_report"),
        **common,
    )
    by_id = {c.id: c for c in chained.components}
    assert by_id[P.CURATOR].inputs["previous_report"].producer_component_id == P.PREVIOUS_REPORT
    with pytest.raises(ValueError, match="Split-"):
        P.create_pipeline(
            "r", str(tmp_path / "root"), "/d/1", "/d/2", forward_records_dir=str(tmp_path), **common
        )

    flink = P.create_pipeline(
        "f", str(tmp_path / "root"), "/d/1", "/d/2", beam_pipeline_args=["--runner=FlinkRunner"], **common
    )
    assert any(a.startswith("--setup_file=") for a in flink.beam_pipeline_args)


# --------------------------------------------------------------------------------------------------
# Real TFX runs
# --------------------------------------------------------------------------------------------------


def _run_local(pipeline) -> None:
    from tfx import v1 as tfx

    tfx.orchestration.LocalDagRunner().run(pipeline)


@pytest.mark.slow
@pytest.mark.timeout(helpers.HANG_GUARD_S)
def test_local_dag_bulk_inferrer_curator_statistics_gen(served_model, flights_spans, tmp_path):
    """Issue 5: ImportExampleGen -> BulkInferrer(recorder model) -> Curator -> StatisticsGen, all real; a
    StatisticsGen of the raw examples feeds the Curator's `statistics` input (issue 15: raw statistics read)."""
    import tensorflow_data_validation as tfdv
    from tfx import v1 as tfx

    from tfx_curator.components.curator.component import Curator
    from tfx_curator.pipelines import pipeline as P

    _, export_dir, _ = served_model
    root = str(tmp_path / "root")
    span = flights_spans[1]
    example_gen = P._example_gen(os.path.dirname(span.path), "train", "*.gz", P.NEW_SPAN_GEN)
    model = tfx.dsl.Importer(
        source_uri=P.served_model_uri(export_dir, root), artifact_type=tfx.types.standard_artifacts.Model
    ).with_id(P.SERVED_MODEL)
    inferrer = tfx.components.BulkInferrer(
        examples=example_gen.outputs["examples"],
        model=model.outputs["result"],
        data_spec=tfx.proto.DataSpec(example_splits=["train"]),
    )
    raw_statistics = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"]).with_id(
        "RawStats"
    )
    curator = Curator(
        examples=example_gen.outputs["examples"],
        inference_result=inferrer.outputs["inference_result"],
        statistics=raw_statistics.outputs["statistics"],
        budget=0.2,
        strategy="grad_norm",
        seed=11,
    )
    statistics = tfx.components.StatisticsGen(
        examples=curator.outputs["curated_examples"], stats_options=tfdv.StatsOptions(weight_feature=WEIGHT)
    )
    _run_local(
        tfx.dsl.Pipeline(
            pipeline_name="issue5",
            pipeline_root=root,
            components=[example_gen, model, inferrer, raw_statistics, curator, statistics],
            metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
                os.path.join(root, "m.sqlite")
            ),
            beam_pipeline_args=P.direct_beam_args(),
        )
    )

    curated = P.output_uri(root, "Curator", "curated_examples")
    weights = kept_weights(os.path.join(curated, "Split-train", "*"))
    report = json.load(open(os.path.join(P.output_uri(root, "Curator", "curation_report"), "report.json")))
    acc = report["splits"]["train"]["accounting"]
    assert acc["examples_read"] == span.rows and acc["rejected"] == 0 and acc["selected"] == len(weights)
    assert report["forward_records"]  # the InferenceResult was read
    raw_stats = os.path.join(P.output_uri(root, "RawStats", "statistics"), "Split-train", "FeatureStats.pb")
    assert report["splits"]["train"]["unbiasedness"]["raw_statistics"] == {
        "source": "statistics",
        "uri": raw_stats,
        "examples": span.rows,
    }
    assert report["splits"]["train"]["unbiasedness"]["features"]
    assert 0.1 * span.rows < len(weights) < 0.3 * span.rows
    total = sum(weights.values())
    assert abs(total - span.rows) <= ht_tolerance(list(weights.values())), (total, span.rows)

    stats_file = glob.glob(
        os.path.join(P.output_uri(root, "StatisticsGen", "statistics"), "Split-train", "*")
    )
    stats = tfdv.load_stats_binary(stats_file[0]).datasets[0]
    assert stats.num_examples == len(weights)
    assert stats.weighted_num_examples == pytest.approx(total, rel=1e-5)
    names = {f.path.step[0] for f in stats.features}
    assert WEIGHT in names and "carrier" in names and "label" in names


@pytest.mark.slow
@pytest.mark.timeout(helpers.HANG_GUARD_S)
def test_create_pipeline_bootstrap_then_curated_step(tmp_path):
    """Issue 6: bootstrap on span 1, then a step curating span 2 served by the pushed model; eval on span 3."""
    from tfx_curator.data import nycflights
    from tfx_curator.pipelines import pipeline as P

    spans = nycflights.write_spans(str(tmp_path / "data"), [1, 2, 3], max_rows_per_span=1500)
    serving = str(tmp_path / "serving")
    common = dict(serving_dir=serving, metadata_path=str(tmp_path / "metadata.sqlite"), min_auc=0.5)
    span_dir = [os.path.dirname(s.path) for s in spans]

    _run_local(P.create_pipeline("boot", str(tmp_path / "boot"), span_dir[0], span_dir[1], **common))
    served = P.latest_pushed_model(serving)
    assert served, "bootstrap model not pushed"
    boot_summary = trainer_module.read_summary(P.output_uri(str(tmp_path / "boot"), P.TRAINER, "model_run"))
    assert boot_summary["weight_feature"] is None and boot_summary["examples"] == spans[0].rows

    root = str(tmp_path / "step")
    _run_local(
        P.create_pipeline(
            "step", root, span_dir[1], span_dir[2], served_model_dir=served, budget=0.1, **common
        )
    )
    report = json.load(open(os.path.join(P.output_uri(root, P.CURATOR, "curation_report"), "report.json")))
    acc = report["splits"]["train"]["accounting"]
    served = report["splits"]["train"][
        "served_model"
    ]  # the bootstrap model measured on span 2 by the Curator
    assert served["examples_scored"] == spans[1].rows and 0.5 < served["all"]["auc"] < 1.0
    assert served["all"]["label_rate"] == pytest.approx(spans[1].positive_rate)
    summary = trainer_module.read_summary(P.output_uri(root, P.TRAINER, "model_run"))
    weights = list(
        kept_weights(os.path.join(P.output_uri(root, P.CURATOR, "curated_examples"), "Split-*", "*")).values()
    )
    # the Trainer saw the curated examples and their weights, not the raw span
    assert summary["weight_feature"] == WEIGHT and summary["examples"] == acc["selected"] == len(weights)
    assert summary["weight_sum"] == pytest.approx(sum(weights), rel=1e-6)
    assert abs(summary["weight_sum"] - spans[1].rows) <= ht_tolerance(weights)
    assert summary["examples"] < 0.2 * spans[1].rows
    assert summary["warm_start_from"].endswith("Format-Serving")

    metrics = P.read_eval_metrics(P.output_uri(root, P.EVALUATOR, "evaluation"))
    assert metrics["example_count"] == spans[2].rows
    assert 0.5 < metrics["auc"] < 1.0 and 0.0 < metrics["log_loss"] < 1.0
    assert metrics["mean_label"] == pytest.approx(spans[2].positive_rate)
    assert 0.5 < metrics["calibration"] < 2.0
    assert P.is_blessed(P.output_uri(root, P.EVALUATOR, "blessing"))
    pushed = P.latest_pushed_model(serving)
    assert pushed != served
    signature = tf.saved_model.load(pushed).signatures["serving_default"]
    assert "hidden_norm" in signature.structured_outputs


@pytest.mark.slow
@pytest.mark.timeout(helpers.HANG_GUARD_S)
def test_embedding_curator_between_example_gen_and_trainer(served_model, flights_spans, tmp_path):
    """Issue 6 part 5: an existing ExampleGen -> Trainer DAG gets the Curator in a few lines (docs/embedding.md);
    forward records are production logs in the plain format, imported as an Examples artifact."""
    from tfx import v1 as tfx

    from tfx_curator.components.curator.component import Curator
    from tfx_curator.pipelines import pipeline as P

    _, export_dir, _ = served_model
    span = flights_spans[1]
    # Production logs: the served model's forward pass on every example, in the plain record format.
    raw = helpers.read_tfrecords(span.path)
    out = tf.saved_model.load(export_dir).signatures["serving_default"](examples=tf.constant(raw))
    records_dir = str(tmp_path / "forward_records")
    helpers.write_tfrecords(
        os.path.join(records_dir, "Split-records", "records.gz"),
        [
            helpers.make_record(i[0], float(p[0]), float(h[0]), 1_000, b"1")
            for i, p, h in zip(
                out["example_id"].numpy(), out["prediction"].numpy(), out["hidden_norm"].numpy()
            )
        ],
    )

    # --- the existing DAG ---
    example_gen = tfx.components.ImportExampleGen(input_base=os.path.dirname(span.path))  # train/eval 2:1
    examples = example_gen.outputs["examples"]
    # --- added: curate the train split with the forward records (docs/embedding.md) ---
    records = tfx.dsl.Importer(
        source_uri=records_dir,
        artifact_type=tfx.types.standard_artifacts.Examples,
        properties={"split_names": '["records"]'},
    )
    curator = Curator(examples=examples, forward_records=records.outputs["result"], budget=0.2)
    examples = curator.outputs["curated_examples"]
    # --- the existing Trainer, reading sample_weight ---
    trainer = tfx.components.Trainer(
        run_fn="tfx_curator.pipelines.trainer_module.run_fn",
        examples=examples,
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config={"weight_feature": "sample_weight", "epochs": 1},
    )
    root = str(tmp_path / "root")
    _run_local(
        tfx.dsl.Pipeline(
            pipeline_name="embedded",
            pipeline_root=root,
            components=[example_gen, records, curator, trainer],
            metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
                os.path.join(root, "m.sqlite")
            ),
        )
    )

    report = json.load(open(os.path.join(P.output_uri(root, "Curator", "curation_report"), "report.json")))
    acc = report["splits"]["train"]["accounting"]
    assert report["splits"]["train"]["examples_without_record"] == 0
    assert "eval" not in report["splits"]  # copied unchanged
    weights = list(
        kept_weights(
            os.path.join(P.output_uri(root, "Curator", "curated_examples"), "Split-train", "*")
        ).values()
    )
    summary = trainer_module.read_summary(P.output_uri(root, "Trainer", "model_run"))
    assert summary["examples"] == acc["selected"] == len(weights)
    assert summary["weight_sum"] == pytest.approx(sum(weights), rel=1e-6)
    assert abs(summary["weight_sum"] - acc["examples_read"]) <= ht_tolerance(weights)
    assert (
        acc["examples_read"]
        + len(
            helpers.read_tfrecords(
                os.path.join(P.output_uri(root, "Curator", "curated_examples"), "Split-eval", "*")
            )
        )
        == span.rows
    )
