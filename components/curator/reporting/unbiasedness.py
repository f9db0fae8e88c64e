"""Does the weighted curated sample look like the raw data? Per-feature distances from TFDV statistics.

A weighted sample that does not look like the raw data is a bug the user must see, so each feature gets a
distance raw-vs-weighted and raw-vs-unweighted (L-infinity between category frequencies; for numbers, the
Kolmogorov-Smirnov distance between the quantile-interpolated CDFs) next to the distance that sampling noise
alone explains. The job writes the three statistics per split (raw, curated unweighted, curated weighted).
"""

from __future__ import annotations

import math

import numpy as np

from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.reporting.report import RAW, UNWEIGHTED, WEIGHTED, stats_path

KS_95 = 1.36  # 95% quantile of the Kolmogorov distribution; also used for L-inf of frequencies
NO_EXAMPLES = "no examples in the raw or curated split: nothing to compare"


def check(report_uri: str, split: str, ess: float, options: CurationOptions) -> dict | None:
    """The comparison of one split from its statistics under `report_uri`; None when they were not computed.

    ess: the curated split's effective sample size (the job's figures), which sets the noise level."""
    import tensorflow_data_validation as tfdv
    from tensorflow.io import gfile

    paths = {w: stats_path(report_uri, split, w) for w in (RAW, UNWEIGHTED, WEIGHTED)}
    if not all(gfile.exists(p) for p in paths.values()):
        return None
    loaded = {w: tfdv.load_stats_binary(p) for w, p in paths.items()}
    if any(not s.datasets or not s.datasets[0].num_examples for s in loaded.values()):
        return {"features": [], "note": NO_EXAMPLES}
    raw = loaded[RAW].datasets[0]
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
    effective size. Quantile interpolation adds up to one quantile step, so a feature is flagged only when the
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
