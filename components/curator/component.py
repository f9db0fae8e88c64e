"""The Curator TFX component: wiring only (its contract is in spec.py, the work in executor.py and the Beam job)."""

from __future__ import annotations

from typing import Any

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts

from tfx_curator.components.curator import executor
from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.spec import CurationReport, CuratorSpec, to_exec_properties

__all__ = ["CurationReport", "Curator", "CuratorSpec"]


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

    `statistics` (optional): StatisticsGen's output for the same `examples`. The unbiasedness check then reads
    each curated split's raw statistics from it instead of computing them from a sample of the raw examples
    (a split it lacks is computed, and the report says which statistics were used).

    ## Example
    ```
    inferrer = BulkInferrer(examples=example_gen.outputs["examples"], model=served_model,
                            data_spec=bulk_inferrer_pb2.DataSpec(example_splits=["train"]))
    curator = Curator(examples=example_gen.outputs["examples"],
                      inference_result=inferrer.outputs["inference_result"],
                      record_format="predictionlog", budget=0.1)
    trainer = Trainer(examples=curator.outputs["curated_examples"], ...)  # reads `sample_weight`
    ```

    Every field of `CurationOptions` (options.py, with its help text) is a keyword argument; they are
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
        statistics: types.BaseChannel | None = None,
        **options: Any,
    ):
        if (inference_result is None) == (forward_records is None):
            raise ValueError(
                "Curator needs exactly one of `inference_result` (BulkInferrer) or `forward_records`"
            )
        if inference_result is not None:
            options.setdefault("record_format", "predictionlog")
        params = to_exec_properties(CurationOptions.from_dict(options), options)  # clear errors now
        spec = CuratorSpec(
            examples=examples,
            inference_result=inference_result,
            forward_records=forward_records,
            previous_report=previous_report,
            statistics=statistics,
            curated_examples=types.Channel(type=standard_artifacts.Examples),
            curation_report=types.Channel(type=CurationReport),
            **params,
        )
        super().__init__(spec=spec)
