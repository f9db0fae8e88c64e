"""The Curator's TFX contract: channel keys defined once, one parameter per option, and the options surviving
the trip through execution properties (as TFX and Kubeflow deliver them) unchanged."""

import ast
import json
import math
import pathlib
import string

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tfx.types import channel_utils, standard_artifacts

from tfx_curator.components.curator import component, options, spec
from tfx_curator.components.curator.options import CurationOptions

CHANNEL_KEYS = {
    "EXAMPLES_KEY": "examples",
    "INFERENCE_RESULT_KEY": "inference_result",
    "FORWARD_RECORDS_KEY": "forward_records",
    "PREVIOUS_REPORT_KEY": "previous_report",
    "STATISTICS_KEY": "statistics",
    "CURATED_EXAMPLES_KEY": "curated_examples",
    "CURATION_REPORT_KEY": "curation_report",
}
PACKAGE = pathlib.Path(spec.__file__).parents[2]  # the source tree (the tfx_curator package)


def test_channel_keys_are_the_spec_channels():
    for name, value in CHANNEL_KEYS.items():
        assert getattr(spec, name) == value
    assert set(spec.CuratorSpec.INPUTS) == {
        "examples",
        "inference_result",
        "forward_records",
        "previous_report",
        "statistics",
    }
    assert set(spec.CuratorSpec.OUTPUTS) == {"curated_examples", "curation_report"}
    assert spec.CuratorSpec.OUTPUTS["curation_report"].type is spec.CurationReport
    assert spec.CurationReport.TYPE_NAME == "tfx_curator.CurationReport"


def test_channel_keys_are_defined_once():
    """No module but spec.py assigns a channel-key constant (EXAMPLES_KEY = ...)."""
    definers = set()
    for room in ("components", "pipelines", "kubeflow", "serving", "data"):
        for path in (PACKAGE / room).rglob("*.py"):
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id in CHANNEL_KEYS for t in node.targets
                ):
                    definers.add(path.relative_to(PACKAGE).as_posix())
    assert definers == {"components/curator/spec.py"}


def test_one_optional_parameter_per_option_typed_like_the_field():
    assert set(spec.CuratorSpec.PARAMETERS) == set(options.FIELDS)
    assert all(p.optional for p in spec.CuratorSpec.PARAMETERS.values())
    types = {name: p.type for name, p in spec.CuratorSpec.PARAMETERS.items()}
    assert types["budget"] is float and types["max_weight"] is float and types["seed"] is int
    assert types["compute_statistics"] is bool and types["hidden_norm_key"] is str
    assert types["splits"] == spec.List[str]


# ---------------------------------------------------------------------------------------------------------
# The exec-property round trip, over every field
# ---------------------------------------------------------------------------------------------------------

_names = st.text(alphabet=string.ascii_letters + string.digits + "_/.", min_size=1, max_size=12)
_rates = st.floats(0.0, 1.0)
FIELD_STRATEGIES = {
    "id_feature": _names,
    "label_feature": _names,
    "task": st.sampled_from(options.TASKS),
    "budget": st.one_of(_rates, st.integers(2, 10**9)),
    "strategy": st.sampled_from(options.STRATEGIES),
    "mode": st.sampled_from(options.MODES),
    "window_size": st.integers(1, 2**31),
    "p_min": _rates,
    "mix": _rates,
    "max_weight": st.none() | st.floats(1.0, 1e12),
    "seed": st.integers(0, 2**63 - 1),
    "weight_feature": _names,
    "missing_record_policy": st.sampled_from(options.MISSING_RECORD_POLICIES),
    "duplicate_policy": st.sampled_from(options.DUPLICATE_POLICIES),
    "splits": st.lists(_names, min_size=1, max_size=4).map(tuple),
    "record_format": st.sampled_from(options.RECORD_FORMATS),
    "prediction_key": _names,
    "hidden_norm_key": st.none() | _names,
    "class_label": _names,
    "record_id_output_key": st.none() | _names,
    "skip_corrupt_files": st.booleans(),
    "compute_statistics": st.booleans(),
    "max_missing_record_rate": _rates,
    "max_reject_rate": _rates,
    "drift_max_auc_change": st.floats(0.0, math.inf),
    "drift_max_calibration_change": st.floats(0.0, math.inf),
    "drift_max_psi": st.floats(0.0, math.inf),
}


@st.composite
def curation_options(draw):
    values = {name: draw(s) for name, s in FIELD_STRATEGIES.items()}
    assume(len({values["id_feature"], values["label_feature"], values["weight_feature"]}) == 3)
    assume(not (values["task"] == "regression" and values["strategy"] in options.LABEL_AWARE_STRATEGIES))
    return CurationOptions(**values)


def _over_the_wire(exec_properties: dict) -> dict:
    """What an orchestrator may hand the executor: JSON-encoded lists, bools as ints, through JSON."""
    wire = {}
    for name, value in exec_properties.items():
        if isinstance(value, list):
            value = json.dumps(value)
        elif isinstance(value, bool):
            value = int(value)
        wire[name] = value
    return json.loads(json.dumps(wire))


def test_the_strategies_cover_every_field():
    assert set(FIELD_STRATEGIES) == set(options.FIELDS)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(curation_options())
def test_options_survive_the_exec_property_round_trip(opts):
    properties = spec.to_exec_properties(opts)
    for name, value in properties.items():  # every value has its parameter's declared type
        spec.CuratorSpec.PARAMETERS[name].type_check(name, value)
    assert spec.options_from_exec_properties(properties) == opts
    assert spec.options_from_exec_properties(_over_the_wire(properties)) == opts


def test_only_the_named_options_are_set():
    opts = CurationOptions(budget=300, splits=["eval"], record_id_output_key=None, hidden_norm_key=None)
    assert spec.to_exec_properties(opts, ["budget", "splits", "record_id_output_key", "hidden_norm_key"]) == {
        "budget": 300.0,
        "splits": ["eval"],
        "hidden_norm_key": "",  # None, which is not the default
    }  # record_id_output_key None is the default: left out


def test_ints_as_floats_and_other_properties_are_accepted():
    opts = spec.options_from_exec_properties(
        {
            "splits": '["train", "eval"]',
            "skip_corrupt_files": 1,
            "seed": 3.0,
            "budget": 0.2,
            "unrelated": None,
        }
    )
    assert opts.splits == ("train", "eval") and opts.skip_corrupt_files is True and opts.seed == 3


def test_a_none_string_option_reaches_the_executor_as_none():
    """hidden_norm_key=None (never read the hidden norm) is not the default: it must not be dropped."""
    curator = component.Curator(
        examples=channel_utils.as_channel([standard_artifacts.Examples()]),
        forward_records=channel_utils.as_channel([standard_artifacts.Examples()]),
        hidden_norm_key=None,
        max_weight=None,
        budget=5000,
    )
    assert curator.exec_properties["budget"] == 5000.0 and "max_weight" not in curator.exec_properties
    opts = spec.options_from_exec_properties(curator.exec_properties)
    assert opts == CurationOptions(hidden_norm_key=None, budget=5000)
