"""The strategy registry (strategies.py): every list derived from it, the signal and help of each strategy."""

import pytest

from tfx_curator.components.curator import options
from tfx_curator.components.curator.policy import signals, strategies


def test_three_strategies_per_importance_signal_and_the_baselines():
    assert strategies.STRATEGIES == (
        "loss",
        "grad_norm",
        "uniform",
        "negative_downsampling",
        "top_k",
        "full",
        "stratified_loss",
        "stratified_grad_norm",
        "balanced_loss",
        "balanced_grad_norm",
    )
    for signal in signals.IMPORTANCE_SIGNALS:
        for name in (signal, f"stratified_{signal}", f"balanced_{signal}"):
            assert strategies.strategy_signal(name) == signal and strategies.get(name).water_filled
    assert strategies.IMPORTANCE_STRATEGIES == ("loss", "grad_norm")
    assert strategies.STRATIFIED_STRATEGIES == (
        "stratified_loss",
        "stratified_grad_norm",
        "balanced_loss",
        "balanced_grad_norm",
    )


def test_derived_lists():
    assert set(strategies.LABEL_AWARE_STRATEGIES) == {
        "negative_downsampling",
        *strategies.STRATIFIED_STRATEGIES,
    }
    assert set(strategies.STRATEGIES_WITH_SCORES) == {*strategies.WATER_FILLED, "top_k"}
    assert set(strategies.WATER_FILLED) == {
        *strategies.IMPORTANCE_STRATEGIES,
        *strategies.STRATIFIED_STRATEGIES,
    }
    assert options.STRATEGIES is strategies.STRATEGIES and options.TASKS is signals.TASKS


def test_baselines_report_the_loss():
    for name in ("uniform", "negative_downsampling", "top_k", "full"):
        assert strategies.strategy_signal(name) == "loss"
        assert not strategies.get(name).water_filled


def test_report_notes_come_from_the_signal():
    assert strategies.report_notes("stratified_grad_norm") == [signals.get("grad_norm").note]
    assert strategies.report_notes("full") == [signals.get("loss").note]


def test_unknown_strategy_names_the_known_ones():
    with pytest.raises(ValueError, match="expected one of"):
        strategies.get("entropy")
