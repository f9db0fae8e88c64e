"""Deterministic hashing and Poisson sampling (sampling.py): golden values, the documented definition,
uniformity, order and partition freedom."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from policy_helpers import (
    SETTINGS,
    Z,
    ids_for,
)

from tfx_curator.components.curator.policy import sampling

# ----------------------------------------------------------------------------------------------------------
# Hashing and Poisson sampling
# ----------------------------------------------------------------------------------------------------------

GOLDEN_IDS = [b"", b"a", b"a\x00", b"example-0", bytes(range(256))]
GOLDEN = {  # stable forever: changing these changes which examples every past run selected
    0: [0x3DFEDBC9A74D0E98, 0x0701C73DA8F05968, 0x2AA0CF3465EA5B35, 0x7A0ACD5DEF1A95C1, 0xFEACD9F49B97558A],
    42: [0x52098BA14F202DBB, 0xDB6AF0DD150656D8, 0xF51A52BB5B7DC4D1, 0x04424361A188F6E6, 0x7C99BD483367AE3D],
    2**64 - 1: [
        0xC9C71B6B32CD0173,
        0xEDB57DD8F825715A,
        0xDF3412E331AE7EDE,
        0x842BA1DF00FED71D,
        0xEFFDAF2E2102C0CF,
    ],
}


def reference_hash64(id_bytes: bytes, seed: int) -> int:
    """Pure-Python transcription of the documented definition."""
    mask = 2**64 - 1

    def mix64(z):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        return z ^ (z >> 31)

    state = 0xCBF29CE484222325 ^ mix64(((seed & mask) + 0x9E3779B97F4A7C15) & mask)
    for byte in len(id_bytes).to_bytes(8, "little") + id_bytes:
        state = ((state ^ byte) * 0x100000001B3) & mask
    return mix64(state)


def test_hash_is_pinned_to_golden_values():
    assert sampling.splitmix64(0) == 0xE220A8397B1DCDAF  # SplitMix64's published first output for seed 0
    for seed, expected in GOLDEN.items():
        assert [int(h) for h in sampling.hash64(GOLDEN_IDS, seed)] == expected
        assert [reference_hash64(i, seed) for i in GOLDEN_IDS] == expected
        u = sampling.hash_uniform(GOLDEN_IDS, seed)
        np.testing.assert_array_equal(u, [(h >> 11) / 2.0**53 for h in expected])


@SETTINGS
@given(ids=st.lists(st.binary(max_size=40), min_size=1, max_size=50), seed=st.integers(-(2**70), 2**70))
def test_hash_matches_reference_for_any_bytes(ids, seed):
    got = sampling.hash64(ids, seed)
    assert [int(h) for h in got] == [reference_hash64(i, seed) for i in ids]
    u = sampling.hash_uniform(ids, seed)
    assert u.dtype == np.float64 and (u >= 0).all() and (u < 1).all()


def test_trailing_nul_bytes_are_significant():
    u = sampling.hash_uniform([b"a", b"a\x00", b"a\x00\x00", b"\x00", b""], 3)
    assert len(set(u.tolist())) == 5
    assert sampling.hash_uniform(np.array([b"a", b"a\x00"], dtype=object), 3).tolist() == u[:2].tolist()


def test_hash_uniformity():
    n, bins = 200_000, 64
    u = sampling.hash_uniform(ids_for(n), seed=11)
    assert abs(u.mean() - 0.5) <= Z * math.sqrt(1.0 / 12.0 / n)
    counts = np.bincount((u * bins).astype(int), minlength=bins)
    chi2 = float(((counts - n / bins) ** 2 / (n / bins)).sum())
    k = bins - 1  # Wilson-Hilferty upper quantile of chi-square(k) at the same false-alarm level
    assert chi2 <= k * (1 - 2 / (9 * k) + Z * math.sqrt(2 / (9 * k))) ** 3
    # Different seeds give (nearly) uncorrelated numbers.
    v = sampling.hash_uniform(ids_for(n), seed=12)
    assert abs(np.corrcoef(u, v)[0, 1]) <= Z / math.sqrt(n)


@SETTINGS
@given(
    ids=st.lists(st.binary(max_size=12), min_size=1, max_size=80),
    seed=st.integers(0, 2**64 - 1),
    data=st.data(),
)
def test_decisions_do_not_depend_on_order_or_partition(ids, seed, data):
    n = len(ids)
    p = np.array(data.draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)))
    keep, weight = sampling.poisson_sample(ids, p, seed)
    perm = np.array(data.draw(st.permutations(range(n))), dtype=int)
    keep_p, weight_p = sampling.poisson_sample([ids[i] for i in perm], p[perm], seed)
    np.testing.assert_array_equal(keep_p, keep[perm])
    np.testing.assert_array_equal(weight_p, weight[perm])
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=4)))
    bounds = [0, *cuts, n]
    parts = [sampling.poisson_sample(ids[a:b], p[a:b], seed) for a, b in zip(bounds[:-1], bounds[1:])]
    np.testing.assert_array_equal(np.concatenate([k for k, _ in parts]), keep)
    np.testing.assert_array_equal(np.concatenate([w for _, w in parts]), weight)


def test_poisson_sample_rule_and_weights():
    ids = ids_for(5000)
    p = np.linspace(0.0, 1.0, 5000)
    keep, weight = sampling.poisson_sample(ids, p, seed=5)
    np.testing.assert_array_equal(keep, sampling.hash_uniform(ids, 5) < p)
    assert not keep[0] and keep[-1]  # p = 0 never kept, p = 1 always kept
    np.testing.assert_allclose(weight[keep], 1.0 / p[keep])
    assert (weight[~keep] == 0).all()
    keep_c, weight_c = sampling.poisson_sample(ids, p, seed=5, max_weight=4.0)
    np.testing.assert_array_equal(keep_c, keep)
    np.testing.assert_allclose(weight_c[keep], np.minimum(1.0 / p[keep], 4.0))


@pytest.mark.parametrize(
    "call",
    [
        lambda: sampling.poisson_sample([b"a", b"b"], [0.5], 0),
        lambda: sampling.poisson_sample([b"a"], [1.5], 0),
        lambda: sampling.poisson_sample([b"a"], [np.nan], 0),
        lambda: sampling.poisson_sample([b"a"], [0.5], 0, max_weight=0.5),
        lambda: sampling.poisson_sample([b"a"], [0.5], 0, max_weight=np.nan),
    ],
)
def test_poisson_sample_rejects_bad_input(call):
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize(
    "ids", [["a", "b"], np.array([b"a", b"b"]), b"ab", [b"a", 3], [b"a", bytearray(b"b")]]
)
def test_hash_rejects_ids_that_are_not_bytes(ids):
    with pytest.raises(TypeError):
        sampling.hash_uniform(ids, 0)
