"""The Curator's TFX contract: channel keys, `CuratorSpec`, the `CurationReport` artifact type, and the one
converter between `CurationOptions` and execution properties (one parameter per option)."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, List  # noqa: UP035 - TFX checks parameters against typing generics

from tfx.types import standard_artifacts
from tfx.types.artifact import Artifact
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from tfx_curator.components.curator.options import FIELDS, CurationOptions

EXAMPLES_KEY = "examples"
INFERENCE_RESULT_KEY = "inference_result"
FORWARD_RECORDS_KEY = "forward_records"
PREVIOUS_REPORT_KEY = "previous_report"
STATISTICS_KEY = (
    "statistics"  # StatisticsGen's output for the same examples: the raw statistics, not computed
)
CURATED_EXAMPLES_KEY = "curated_examples"
CURATION_REPORT_KEY = "curation_report"


class CurationReport(Artifact):
    """report.json / report.html, rejects/ and TFDV statistics of one curation run."""

    TYPE_NAME = "tfx_curator.CurationReport"


def _parameter_types() -> dict[str, tuple[type, bool]]:
    """Option name -> (execution-parameter type, whether the option may be None), from the field annotations."""
    hints = typing.get_type_hints(CurationOptions)
    out = {}
    for f in dataclasses.fields(CurationOptions):
        hint, optional = hints[f.name], False
        if isinstance(hint, types.UnionType) and type(None) in hint.__args__:
            (hint,) = [a for a in hint.__args__ if a is not type(None)]
            optional = True
        if hint == tuple[str, ...]:
            hint = List[str]  # noqa: UP006
        if hint not in (str, int, float, bool, List[str]):  # noqa: UP006
            raise TypeError(f"no execution-parameter type for CurationOptions.{f.name}: {hints[f.name]}")
        if optional and hint is not str and f.default is not None:
            raise TypeError(f"CurationOptions.{f.name}: None is only expressible as the default")
        out[f.name] = (hint, optional)
    return out


PARAMETER_TYPES = _parameter_types()
# None for a string option whose default is not None travels as "" (an absent parameter means the default).
NONE_STRING = ""


class CuratorSpec(ComponentSpec):
    """Curator: examples + forward records -> curated, weighted examples and a curation report."""

    PARAMETERS = {
        name: ExecutionParameter(type=typ, optional=True) for name, (typ, _) in PARAMETER_TYPES.items()
    }
    INPUTS = {
        EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        INFERENCE_RESULT_KEY: ChannelParameter(type=standard_artifacts.InferenceResult, optional=True),
        FORWARD_RECORDS_KEY: ChannelParameter(type=standard_artifacts.Examples, optional=True),
        PREVIOUS_REPORT_KEY: ChannelParameter(type=CurationReport, optional=True),
        STATISTICS_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics, optional=True),
    }
    OUTPUTS = {
        CURATED_EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        CURATION_REPORT_KEY: ChannelParameter(type=CurationReport),
    }


def to_exec_properties(options: CurationOptions, names: Iterable[str] | None = None) -> dict[str, Any]:
    """The options (every field, or those in `names`) as execution properties of `CuratorSpec`.

    Values take the parameter's type (a count budget 5000 is the float 5000.0, `splits` a list). None is left
    out when it is the default, and is "" for a string option whose default is not None.
    """
    out = {}
    for name in PARAMETER_TYPES if names is None else names:
        typ = PARAMETER_TYPES[name][0]
        value = getattr(options, name)
        if value is None:
            if FIELDS[name].default is not None:
                out[name] = NONE_STRING
            continue
        out[name] = list(value) if typ is List[str] else typ(value)  # noqa: UP006
    return out


def options_from_exec_properties(exec_properties: Mapping[str, Any]) -> CurationOptions:
    """CurationOptions from execution properties, as TFX or Kubeflow deliver them: lists may arrive
    JSON-encoded, bools as ints, ints as floats; None values and other properties are ignored."""
    values = {}
    for name, value in exec_properties.items():
        if name not in PARAMETER_TYPES or value is None:
            continue
        typ, optional = PARAMETER_TYPES[name]
        if typ is List[str]:  # noqa: UP006
            value = tuple(json.loads(value) if isinstance(value, str) else value)
        elif typ is bool:
            value = bool(value)
        elif typ is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        elif typ is str and optional and value == NONE_STRING:
            value = None
        values[name] = value
    return CurationOptions.from_dict(values)
