"""Importance signals (signals.py): each score function, the input checks, the registry."""

import math

import numpy as np
import pytest

from tfx_curator.components.curator.policy import signals


def test_loss_binary_is_log_loss_with_clipping():
    pred = np.array([0.9, 0.9, 0.0, 1.0, 0.5])
    label = np.array([1.0, 0.0, 1.0, 0.0, 0.25])
    s = signals.compute_scores("loss", pred, label, eps=1e-7)
    expected = [-math.log(0.9), -math.log(0.1), -math.log(1e-7), -math.log(1e-7), math.log(2.0)]
    np.testing.assert_allclose(s, expected, rtol=1e-9)  # 1 - (1 - eps) rounds
    assert np.isfinite(s).all() and (s >= 0).all()


def test_loss_regression_is_squared_error():
    s = signals.compute_scores(
        "loss", np.array([1.0, -2.0, 3.5]), np.array([3.0, -2.0, 1.0]), task="regression"
    )
    np.testing.assert_allclose(s, [4.0, 0.0, 6.25])


def test_grad_norm_with_and_without_hidden_norm():
    pred = np.array([0.2, 0.7, 0.4])
    label = np.array([1.0, 0.0, 0.0])
    np.testing.assert_allclose(signals.compute_scores("grad_norm", pred, label), [0.8, 0.7, 0.4])
    h = np.array([3.0, np.nan, 0.0])
    expected = [0.8 * math.sqrt(10.0), 0.7, 0.4]
    np.testing.assert_allclose(signals.compute_scores("grad_norm", pred, label, hidden_norm=h), expected)
    reg = signals.compute_scores("grad_norm", np.array([1.0]), np.array([4.0]), "regression", np.array([2.0]))
    np.testing.assert_allclose(reg, [3.0 * math.sqrt(5.0)])


def test_uniform_signal_is_ones():
    np.testing.assert_array_equal(
        signals.compute_scores("uniform", np.array([0.1, 0.9]), np.array([0, 1])), [1, 1]
    )


def test_invalid_inputs_mask_counts_bad_rows():
    pred = np.array([0.5, np.nan, 1.5, 0.5, 0.5])
    label = np.array([1.0, 1.0, 1.0, np.inf, 1.0])
    h = np.array([1.0, 1.0, 1.0, 1.0, -1.0])
    np.testing.assert_array_equal(
        signals.invalid_inputs(pred, label, "binary", h), [False, True, True, True, True]
    )
    # Regression allows any finite prediction; NaN hidden_norm means "not logged".
    mask = signals.invalid_inputs(
        np.array([5.0, -3.0]), np.array([1.0, 2.0]), "regression", np.array([np.nan, 1])
    )
    assert not mask.any()


@pytest.mark.parametrize(
    "args, kwargs",
    [
        (("entropy", [0.5], [1.0]), {}),
        (("loss", [0.5], [1.0]), {"task": "multiclass"}),
        (("loss", [0.5, 0.5], [1.0]), {}),
        (("loss", [np.nan], [1.0]), {}),
        (("loss", [0.5], [np.inf]), {}),
        (("loss", [1.5], [1.0]), {}),
        (("loss", [0.5], [2.0]), {}),
        (("loss", [0.5], [1.0]), {"eps": 0.0}),
        (("grad_norm", [0.5], [1.0]), {"hidden_norm": np.array([np.inf])}),
        (("grad_norm", [0.5], [1.0]), {"hidden_norm": np.array([-1.0])}),
        (("grad_norm", [0.5], [1.0]), {"hidden_norm": np.array([1.0, 2.0])}),
        (("loss", [np.inf], [1.0]), {"task": "regression"}),
    ],
)
def test_compute_scores_rejects_bad_input(args, kwargs):
    signal, pred, label = args
    with pytest.raises(ValueError):
        signals.compute_scores(signal, np.array(pred), np.array(label), **kwargs)


def test_every_signal_is_registered_once_with_help_and_note():
    names = [s.name for s in signals.REGISTRY]
    assert len(set(names)) == len(names) and signals.SIGNALS == tuple(names)
    assert all(s.help and s.note for s in signals.REGISTRY)
    assert signals.IMPORTANCE_SIGNALS == ("loss", "grad_norm")
    with pytest.raises(ValueError, match="expected one of"):
        signals.get("entropy")
