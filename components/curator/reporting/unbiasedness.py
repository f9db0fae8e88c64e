"""Does the weighted curated sample look like the raw data? Per-feature distances from TFDV statistics.

A weighted sample that does not look like the raw data is a bug the user must see, so each feature gets a
distance raw-vs-weighted and raw-vs-unweighted (L-infinity between category frequencies; for numbers, the
Kolmogorov-Smirnov distance between the quantile-interpolated CDFs) next to the distance that sampling noise
alone explains. The curated split's statistics are one TFDV pass weighted by the weight feature (TFDV keeps the
unweighted statistics beside the weighted ones). The raw split's statistics come from a StatisticsGen output
given to the job (`statistics_gen_paths`), else from a deterministic sample of the accepted raw examples
(`raw_sample`, sized by `raw_sample_rate`), else (a count budget) from all of them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence

import numpy as np

from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import sampling
from tfx_curator.components.curator.reporting.report import (
    CURATED,
    RAW,
    SOURCE_ALL,
    SOURCE_SAMPLE,
    SOURCE_STATISTICS,
    UNWEIGHTED,
    WEIGHTED,
    stats_path,
)

KS_95 = 1.36  # 95% quantile of the Kolmogorov distribution; also used for L-inf of frequencies
NO_EXAMPLES = "no examples in the raw or curated statistics: nothing to compare"

# The raw sample. The check's noise level is KS_95 * sqrt(1/m + 1/e) for a raw sample of m and a curated ESS e.
# e <= the examples kept, whose expectation is the budget count B = rate * n, and the sample holds
# m ~ RAW_SAMPLE_FACTOR * rate * n = RAW_SAMPLE_FACTOR * B >= RAW_SAMPLE_FACTOR * e examples, so the noise level
# is at most sqrt(1 + 1 / RAW_SAMPLE_FACTOR) = 1.12 times sqrt(1/e), the level with a raw split of any size: the
# check loses little power (a factor 2 would give 1.22, a factor 1 1.41), and TFDV describes 40% of the raw
# examples at a 10% budget instead of all of them (all of them from a 25% budget up).
RAW_SAMPLE_FACTOR = 4
RAW_SAMPLE_SALT = 0x2545F4914F6CDD1D  # decorrelates the raw sample from the selection hash and the windows
# Where StatisticsGen writes a split's statistics: <artifact uri>/Split-<split>/FeatureStats.pb (tfx 1.16,
# tfx.components.statistics_gen.stats_artifact_utils.BINARY_PB_BASENAME).
STATISTICS_GEN_FILE = "FeatureStats.pb"


def raw_sample_rate(options: CurationOptions) -> float:
    """The probability that an accepted raw example goes into the raw statistics: RAW_SAMPLE_FACTOR times the
    split's rate (the budget, or p_min when larger), at most 1. A count budget gives 1 (every example): its
    rate is known only once the split is counted, after the examples went by."""
    if options.budget > 1:
        return 1.0
    return min(1.0, RAW_SAMPLE_FACTOR * max(float(options.budget), options.p_min))


def raw_sample(ids: Sequence[bytes], seed: int, rate: float) -> np.ndarray:
    """Which ids are in the raw sample (bool per id): hash_uniform(id, seed ^ RAW_SAMPLE_SALT) < rate.

    Deterministic per id: the same on a re-run, in any batch, bundle or order."""
    if rate >= 1.0:
        return np.ones(len(ids), dtype=bool)
    return sampling.hash_uniform(ids, seed ^ RAW_SAMPLE_SALT) < rate


def statistics_gen_paths(uri: str, splits: Iterable[str]) -> dict[str, str]:
    """{split: its FeatureStats.pb} for the `splits` a StatisticsGen output at `uri` holds (others left out)."""
    from tensorflow.io import gfile

    paths = {s: os.path.join(uri, f"Split-{s}", STATISTICS_GEN_FILE) for s in splits}
    return {s: p for s, p in paths.items() if gfile.exists(p)}


def raw_source(
    options: CurationOptions, raw_path: str | None, sampled: int, accepted: int, statistics_input: bool
) -> dict:
    """Which raw statistics the check used: a StatisticsGen output (`raw_path`), a sample of `sampled` of the
    `accepted` examples, or all of them. statistics_input: whether the job was given one (then a split it
    lacks says so)."""
    if raw_path is not None:
        return {"source": SOURCE_STATISTICS, "uri": raw_path, "examples": sampled}
    rate = raw_sample_rate(options)
    out = (
        {"source": SOURCE_SAMPLE, "rate": rate, "sampled": sampled, "accepted": accepted}
        if rate < 1.0
        else {"source": SOURCE_ALL, "examples": sampled, "accepted": accepted}
    )
    if statistics_input:
        out["note"] = "split not in the statistics input: raw statistics computed by the job"
    return out


def _curated_paths(report_uri: str, split: str, exists) -> dict[str, str] | None:
    """{UNWEIGHTED: path, WEIGHTED: path}: the one weighted pass, or the two files of older reports."""
    one = stats_path(report_uri, split, CURATED)
    if exists(one):
        return {UNWEIGHTED: one, WEIGHTED: one}
    two = {w: stats_path(report_uri, split, w) for w in (UNWEIGHTED, WEIGHTED)}
    return two if all(map(exists, two.values())) else None


def check(
    report_uri: str,
    split: str,
    ess: float,
    options: CurationOptions,
    accepted: int = 0,
    raw_statistics: str | None = None,
    statistics_input: bool = False,
) -> dict | None:
    """The comparison of one split from its statistics; None when they were not computed.

    ess: the curated split's effective sample size (the job's figures), which sets the noise level with the raw
    statistics' example count; accepted: the split's accepted examples (what a raw sample was drawn from);
    raw_statistics: a StatisticsGen FeatureStats.pb of the split (else the job's raw statistics under
    `report_uri`); statistics_input: whether the job was given a statistics input at all."""
    from tensorflow.io import gfile

    raw_path = raw_statistics or stats_path(report_uri, split, RAW)
    curated = _curated_paths(report_uri, split, gfile.exists)
    if curated is None or not gfile.exists(raw_path):
        return None
    import tensorflow_data_validation as tfdv  # only when there is something to compare (~0.8 s of imports)

    paths = {RAW: raw_path, **curated}
    loaded = {w: tfdv.load_stats_binary(p) for w, p in paths.items()}
    raw = loaded[RAW].datasets[0] if loaded[RAW].datasets else None
    source = raw_source(options, raw_statistics, raw.num_examples if raw else 0, accepted, statistics_input)
    if any(not s.datasets or not s.datasets[0].num_examples for s in loaded.values()):
        return {"features": [], "note": NO_EXAMPLES, "raw_statistics": source}
    rows = compare_statistics(
        raw,
        loaded[UNWEIGHTED].datasets[0],
        loaded[WEIGHTED].datasets[0],
        raw.num_examples,
        ess,
        skip=(options.id_feature, options.weight_feature),
    )
    return {
        "features": rows,
        "mismatched": [r["feature"] for r in rows if r["mismatch"]],
        "statistics": dict(paths),
        "raw_statistics": source,
    }


def _categorical_freqs(feature, weighted: bool) -> dict:
    s = feature.string_stats
    buckets = (s.weighted_string_stats.rank_histogram if weighted else s.rank_histogram).buckets
    values = {b.label: b.sample_count for b in buckets}
    if not values:  # rank histogram absent: fall back to top values
        top = s.weighted_string_stats.top_values if weighted else s.top_values
        values = {t.value: t.frequency for t in top}
    total = sum(values.values())
    return {k: v / total for k, v in values.items()} if total else {}


def _quantile_cdf(feature, weighted: bool):
    hists = (feature.num_stats.weighted_numeric_stats if weighted else feature.num_stats).histograms
    for h in hists:
        if h.type == h.QUANTILES and h.buckets:
            edges = [h.buckets[0].low_value] + [b.high_value for b in h.buckets]
            return np.asarray(edges), np.linspace(0.0, 1.0, len(edges))
    return None


def feature_distance(base, other, other_weighted: bool) -> tuple[str, float] | None:
    """(kind, distance) between one feature's distribution in `base` (unweighted) and in `other`."""
    if base.HasField("string_stats") and other.HasField("string_stats"):
        a, b = _categorical_freqs(base, False), _categorical_freqs(other, other_weighted)
        keys = set(a) | set(b)
        return "linf", max((abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in keys), default=0.0)
    if base.HasField("num_stats") and other.HasField("num_stats"):
        ca, cb = _quantile_cdf(base, False), _quantile_cdf(other, other_weighted)
        if ca is None or cb is None:
            return None
        xs = np.union1d(ca[0], cb[0])
        fa = np.interp(xs, ca[0], ca[1], left=0.0, right=1.0)
        fb = np.interp(xs, cb[0], cb[1], left=0.0, right=1.0)
        return "ks", float(np.max(np.abs(fa - fb)))
    return None


def compare_statistics(
    raw, unweighted, weighted, n_raw: int, ess: float, skip: tuple[str, ...] = ()
) -> list[dict]:
    """Per-feature distances raw-vs-weighted and raw-vs-unweighted, with the noise level and a flag.

    noise = 1.36 * sqrt(1/n_raw + 1/ess): the 95% level of a two-sample distance with the weighted sample's
    effective size; n_raw is the size of the raw statistics (a sample's, not the split's). Quantile interpolation adds up to one quantile step, so a feature is flagged only when the
    weighted distance exceeds noise + 1/(number of quantile buckets) (numbers) or noise (categories).
    """
    features = {tuple(f.path.step): f for f in raw.features}
    unw = {tuple(f.path.step): f for f in unweighted.features}
    wtd = {tuple(f.path.step): f for f in weighted.features}
    noise = KS_95 * math.sqrt(1.0 / max(n_raw, 1) + 1.0 / max(ess, 1e-9))
    rows = []
    for path, f in sorted(features.items()):
        name = ".".join(path)
        if name in skip or path not in wtd or path not in unw:
            continue
        dw = feature_distance(f, wtd[path], True)
        du = feature_distance(f, unw[path], False)
        if dw is None or du is None:
            continue
        slack = 0.0
        if dw[0] == "ks":
            cdf = _quantile_cdf(f, False)
            slack = 1.0 / (len(cdf[0]) - 1) if cdf is not None else 0.0
        rows.append(
            {
                "feature": name,
                "distance": dw[0],
                "raw_vs_weighted": dw[1],
                "raw_vs_unweighted": du[1],
                "noise_95": noise,
                "mismatch": bool(dw[1] > noise + slack),
            }
        )
    return rows
