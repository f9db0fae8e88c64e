"""Curator component wiring and parameter validation (no pipeline run)."""

import pytest
from tfx.types import channel_utils, standard_artifacts

from tfx_curator.components.curator import component, executor
from tfx_curator.components.curator.options import CurationOptions


def _channel(artifact_type):
    return channel_utils.as_channel([artifact_type()])


def test_spec_wiring_with_inference_result():
    curator = component.Curator(
        examples=_channel(standard_artifacts.Examples),
        inference_result=_channel(standard_artifacts.InferenceResult),
        budget=0.05,
        strategy="grad_norm",
        splits=["train", "extra"],
    )
    assert curator.outputs["curated_examples"].type == standard_artifacts.Examples
    assert curator.outputs["curation_report"].type == component.CurationReport
    params = curator.exec_properties
    assert params["record_format"] == "predictionlog"  # implied by an InferenceResult input
    assert params["budget"] == 0.05 and params["strategy"] == "grad_norm"
    assert params["splits"] == ["train", "extra"]
    assert curator.executor_spec.executor_class is executor.Executor


def test_count_budget_given_as_int_is_accepted():
    curator = component.Curator(
        examples=_channel(standard_artifacts.Examples),
        forward_records=_channel(standard_artifacts.Examples),
        budget=5000,
    )
    assert curator.exec_properties["budget"] == 5000.0


@pytest.mark.parametrize(
    "key, artifact_type",
    [("previous_report", component.CurationReport), ("statistics", standard_artifacts.ExampleStatistics)],
)
def test_optional_inputs(key, artifact_type):
    spec = component.CuratorSpec.INPUTS[key]
    assert spec.type == artifact_type and spec.optional
    curator = component.Curator(
        examples=_channel(standard_artifacts.Examples),
        forward_records=_channel(standard_artifacts.Examples),
        drift_max_auc_change=0.05,
        **{key: _channel(artifact_type)},
    )
    assert curator.inputs[key].type == artifact_type
    assert curator.exec_properties["drift_max_auc_change"] == 0.05
    without = component.Curator(
        examples=_channel(standard_artifacts.Examples), forward_records=_channel(standard_artifacts.Examples)
    )
    assert key not in without.inputs or without.inputs[key] is None


def test_every_option_is_a_parameter():
    names = set(component.CuratorSpec.PARAMETERS)
    assert names == set(CurationOptions.__dataclass_fields__)


@pytest.mark.parametrize("records", [{}, {"both": True}])
def test_exactly_one_record_input(records):
    kwargs = {}
    if records:
        kwargs = dict(
            inference_result=_channel(standard_artifacts.InferenceResult),
            forward_records=_channel(standard_artifacts.Examples),
        )
    with pytest.raises(ValueError, match="exactly one"):
        component.Curator(examples=_channel(standard_artifacts.Examples), **kwargs)


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(budget=-0.1), "budget"),
        (dict(budget=12.5), "whole number"),
        (dict(strategy="random"), "strategy must be one of"),
        (dict(mode="stream"), "mode must be one of"),
        (dict(p_min=2.0), "p_min"),
        (dict(mix=-1.0), "mix"),
        (dict(max_weight=0.5), "max_weight"),
        (dict(window_size=0), "window_size"),
        (dict(missing_record_policy="guess"), "missing_record_policy"),
        (dict(duplicate_policy="first"), "duplicate_policy"),
        (dict(weight_feature="label"), "three different"),
        (dict(task="regression", strategy="negative_downsampling"), "needs task 'binary'"),
        (dict(splits=[]), "splits"),
        (dict(colour="red"), "unknown curation option"),
    ],
)
def test_bad_parameters_fail_when_the_component_is_built(bad, message):
    with pytest.raises(ValueError, match=message):
        component.Curator(
            examples=_channel(standard_artifacts.Examples),
            forward_records=_channel(standard_artifacts.Examples),
            **bad,
        )
