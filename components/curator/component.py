"""The Curator TFX component: spec wiring only (the work is in executor.py and the Beam job)."""

from __future__ import annotations

import dataclasses
from typing import Any, List  # noqa: UP035 - TFX checks parameters against typing generics

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.artifact import Artifact
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from tfx_curator.components.curator import executor
from tfx_curator.components.curator.options import CurationOptions

EXAMPLES_KEY = "examples"
INFERENCE_RESULT_KEY = "inference_result"
FORWARD_RECORDS_KEY = "forward_records"
PREVIOUS_REPORT_KEY = "previous_report"
CURATED_EXAMPLES_KEY = "curated_examples"
CURATION_REPORT_KEY = "curation_report"


class CurationReport(Artifact):
    """report.json / report.html, rejects/ and TFDV statistics of one curation run."""

    TYPE_NAME = "tfx_curator.CurationReport"


_PARAMETER_TYPES = {
    "max_weight": float,
    "splits": List[str],  # noqa: UP006
    "hidden_norm_key": str,
    "record_id_output_key": str,
}


def _parameters() -> dict[str, ExecutionParameter]:
    params = {}
    for f in dataclasses.fields(CurationOptions):
        typ = (
            _PARAMETER_TYPES.get(f.name)
            or {"int": int, "float": float, "str": str, "bool": bool}[str(f.type)]
        )
        params[f.name] = ExecutionParameter(type=typ, optional=True)
    return params


def _as_parameter(name: str, value):
    """Values as the spec's declared types: a count budget given as an int is still a float parameter."""
    if name == "splits":
        return list(value)
    if CuratorSpec.PARAMETERS[name].type is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


class CuratorSpec(ComponentSpec):
    """Curator: examples + forward records -> curated, weighted examples and a curation report."""

    PARAMETERS = _parameters()
    INPUTS = {
        EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        INFERENCE_RESULT_KEY: ChannelParameter(type=standard_artifacts.InferenceResult, optional=True),
        FORWARD_RECORDS_KEY: ChannelParameter(type=standard_artifacts.Examples, optional=True),
        PREVIOUS_REPORT_KEY: ChannelParameter(type=CurationReport, optional=True),
    }
    OUTPUTS = {
        CURATED_EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        CURATION_REPORT_KEY: ChannelParameter(type=CurationReport),
    }


class Curator(base_beam_component.BaseBeamComponent):
    """Selects which served examples get a backward pass: importance sampling on forward records.

    Joins the serving model's forward records (BulkInferrer's `inference_result`, or plain records as an
    Examples artifact `forward_records`) to the labelled `examples` by id, scores each example (its loss or
    gradient norm under the served prediction), chooses inclusion probabilities that meet the budget with the
    smallest estimator variance (water-filling), samples deterministically (hash of seed and id) and writes the
    kept examples with the weight `1/p` in `weight_feature`. Splits not listed in `splits` are copied unchanged.

    The same job measures the served model on the span (AUC, log loss, calibration, reliability; regression
    errors) into the report and the report artifact's custom properties; with `previous_report` (the last
    run's CurationReport) it also reports drift and flags moves beyond the `drift_max_*` thresholds.

    ## Example
    ```
    inferrer = BulkInferrer(examples=example_gen.outputs["examples"], model=served_model,
                            data_spec=bulk_inferrer_pb2.DataSpec(example_splits=["train"]))
    curator = Curator(examples=example_gen.outputs["examples"],
                      inference_result=inferrer.outputs["inference_result"],
                      record_format="predictionlog", budget=0.1)
    trainer = Trainer(examples=curator.outputs["curated_examples"], ...)  # reads `sample_weight`
    ```

    Every parameter of `CurationOptions` (options.py documents them) is a keyword argument; they are
    validated when the component is built.
    """

    SPEC_CLASS = CuratorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        inference_result: types.BaseChannel | None = None,
        forward_records: types.BaseChannel | None = None,
        previous_report: types.BaseChannel | None = None,
        **options: Any,
    ):
        if (inference_result is None) == (forward_records is None):
            raise ValueError(
                "Curator needs exactly one of `inference_result` (BulkInferrer) or `forward_records`"
            )
        if inference_result is not None:
            options.setdefault("record_format", "predictionlog")
        CurationOptions.from_dict(options)  # clear errors now, not at run time
        params = {k: _as_parameter(k, v) for k, v in options.items() if v is not None}
        spec = CuratorSpec(
            examples=examples,
            inference_result=inference_result,
            forward_records=forward_records,
            previous_report=previous_report,
            curated_examples=types.Channel(type=standard_artifacts.Examples),
            curation_report=types.Channel(type=CurationReport),
            **params,
        )
        super().__init__(spec=spec)
