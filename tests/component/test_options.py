"""CurationOptions: defaults valid, each bad value refused naming the option (and the allowed values), help
text on every field, the record-reading fields."""

import dataclasses

import pytest

from tfx_curator.components.curator import options as options_lib
from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import strategies


def test_defaults_are_valid_and_splits_become_a_tuple():
    assert CurationOptions().splits == ("train",)
    assert CurationOptions(splits=["train", "eval"]).splits == ("train", "eval")


@pytest.mark.parametrize("name", sorted(options_lib.CHOICES))
def test_a_value_outside_the_choices_names_the_option_and_the_allowed_values(name):
    allowed = options_lib.CHOICES[name]
    with pytest.raises(ValueError) as e:
        CurationOptions(**{name: "no-such-value"})
    assert str(e.value) == f"{name} must be one of {list(allowed)}, got 'no-such-value'"
    for value in allowed:  # every allowed value is accepted (with a task that fits the strategy)
        CurationOptions(**{name: value})


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(budget=-0.1), "budget must be a rate in [0, 1] or an integer count > 1, got -0.1"),
        (dict(budget=True), "budget must be a rate"),
        (dict(budget=float("nan")), "budget must be a rate"),
        (dict(budget=12.5), "budget 12.5 > 1 is a count and must be a whole number"),
        (dict(window_size=0), "window_size must be a positive integer, got 0"),
        (dict(p_min=1.5), "p_min must be in [0, 1], got 1.5"),
        (dict(mix=-0.5), "mix must be in [0, 1], got -0.5"),
        (dict(max_weight=0.5), "max_weight must be a finite number >= 1 (or None), got 0.5"),
        (dict(max_weight=float("inf")), "max_weight must be a finite number >= 1"),
        (dict(seed=-1), "seed must be an integer in [0, 2**63), got -1"),
        (dict(seed=2**63), "seed must be an integer in [0, 2**63)"),
        (dict(splits=()), "splits must be a non-empty list of split names, got ()"),
        (dict(splits=("train", "")), "splits must be a non-empty list"),
        (dict(id_feature=""), "id_feature must be a non-empty string, got ''"),
        (dict(prediction_key=3), "prediction_key must be a non-empty string, got 3"),
        (dict(hidden_norm_key=""), "hidden_norm_key must be a non-empty string or None, got ''"),
        (
            dict(weight_feature="label"),
            "id_feature, label_feature and weight_feature must be three different",
        ),
        (dict(max_reject_rate=1.5), "max_reject_rate must be a rate in [0, 1], got 1.5"),
        (dict(max_missing_record_rate=True), "max_missing_record_rate must be a rate in [0, 1], got True"),
        (dict(drift_max_psi=-1.0), "drift_max_psi must be a number >= 0 (inf: never flag), got -1.0"),
        (dict(task="regression", strategy="balanced_loss"), "strategy 'balanced_loss' needs task 'binary'"),
    ],
)
def test_bad_values_are_refused_naming_the_option(bad, message):
    with pytest.raises(ValueError) as e:
        CurationOptions(**bad)
    assert message in str(e.value)


def test_unknown_options_are_named_with_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown curation option\(s\) \['colour'\]; known: \['budget'"):
        CurationOptions.from_dict({"colour": "red", "budget": 0.2})


def test_label_aware_strategies_need_a_binary_task():
    for strategy in options_lib.LABEL_AWARE_STRATEGIES:
        assert strategy in options_lib.STRATEGIES
        with pytest.raises(ValueError, match="needs task 'binary'"):
            CurationOptions(task="regression", strategy=strategy)


def test_every_field_has_help_text():
    for f in dataclasses.fields(CurationOptions):
        assert len(options_lib.option_help(f.name)) > 15, f"CurationOptions.{f.name} has no help text"


def test_the_strategy_help_lists_every_strategy_with_its_note():
    text = options_lib.option_help("strategy")
    for (
        strategy
    ) in strategies.REGISTRY:  # the registry's help, so a new signal's strategies appear by themselves
        assert f"{strategy.name} ({strategy.help})" in text
    assert options_lib.choices_help("pick:", ("a", "b"), {"b": "the second"}) == "pick: a; b (the second)"


def test_json_round_trip():
    options = CurationOptions(budget=5000, strategy="grad_norm", splits=("train", "eval"), max_weight=20.0)
    assert CurationOptions.from_json(options.to_json()) == options


def test_record_config_args_are_the_record_reading_fields():
    from tfx_curator.components.curator.reading.records import RecordConfig

    options = CurationOptions(
        id_feature="uid",
        record_id_output_key="echo",
        prediction_key="p",
        hidden_norm_key=None,
        class_label="yes",
    )
    config = RecordConfig(**options.record_config_args())
    assert config == RecordConfig(
        id_feature="uid", id_output_key="echo", prediction_key="p", hidden_norm_key=None, class_label="yes"
    )
