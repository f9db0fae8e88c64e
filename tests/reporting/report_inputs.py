"""Realistic inputs for the report tests: a split selected in memory (plan.reference_selection) and measured as
the Beam job measures it (SplitStats.from_batch, figures.measured), without a pipeline; an HTML tag checker."""

from __future__ import annotations

import html.parser

import numpy as np

from tfx_curator.components.curator.beam import figures, rows
from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.policy import plan
from tfx_curator.components.curator.reporting import quality
from tfx_curator.components.curator.reporting.report_stats import SplitStats


def split_data(n: int, seed: int = 0, missing: float = 0.0, scores=None):
    """(ids, scores with NaN where no forward record, labels, predictions) of one split."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(float)
    preds = np.clip(0.5 * labels + 0.5 * rng.random(n), 0.0, 1.0)
    s = rng.gamma(2.0, size=n) if scores is None else np.asarray(scores, dtype=float)
    s = np.where(rng.random(n) < missing, np.nan, s)
    preds = np.where(np.isnan(s), np.nan, preds)
    return [b"ex-%d-%d" % (seed, i) for i in range(n)], s, labels, preds


def job_figures(
    options: CurationOptions,
    n: int = 200,
    rejected: dict | None = None,
    examples_read: int | None = None,
    corrupt: list | None = None,
    record_rejects: dict | None = None,
    **data,
) -> figures.JobFigures:
    """The figures of a one-split ("train") job on `n` accepted examples plus `rejected` {reason: count};
    examples_read defaults to the correct count."""
    rejected = rejected or {}
    ids, scores, labels, preds = split_data(n, **data)
    keep, weight, split_plan = plan.reference_selection(options, ids, scores, labels)
    p = plan.plan_probabilities(split_plan, ids, scores, labels, options.seed)
    stats = SplitStats.from_batch(scores, labels, p, keep, weight)
    has = ~np.isnan(scores)
    versions = [b"1" if i % 3 else b"2" for i in range(n)]
    full = quality.QualityStats("binary").add(preds, labels, versions)
    curated = quality.QualityStats("binary", True).add(
        preds[keep], labels[keep], [v for v, k in zip(versions, keep) if k], weight[keep]
    )
    read = n + sum(rejected.values()) if examples_read is None else examples_read
    return figures.measured(
        ["train"],
        options,
        stats={0: stats} if n else {},
        served={
            rows.QualityKey(0, rows.QUALITY_FULL): full,
            rows.QualityKey(0, rows.QUALITY_CURATED): curated,
        },
        counts={0: (n, int(has.sum()), int((labels == 1.0).sum()))},
        events=[(rows.EventKey(0, rows.EXAMPLES_READ), read)],
        rejects=[(rows.RejectKey(0, rows.REJECT_SOURCE_EXAMPLES, r), k) for r, k in rejected.items()]
        + [
            (rows.RejectKey(rows.RECORDS_SPLIT, rows.REJECT_SOURCE_RECORDS, r), k)
            for r, k in (record_rejects or {}).items()
        ],
        plans={0: split_plan},
        corrupt=[rows.CorruptFile(0, *c) for c in corrupt or []],
    )


VOID = {"meta", "img", "br", "hr", "input", "link"}


class _Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.open, self.errors, self.starts = [], [], []

    def handle_starttag(self, tag, attrs):
        self.starts.append(tag)
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.starts.append(tag)

    def handle_endtag(self, tag):
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
        else:
            self.open.pop()


def tags(text: str) -> list[str]:
    """The start tags of `text`, in order; AssertionError unless every element is closed in order."""
    parser = _Tags()
    parser.feed(text)
    parser.close()
    assert not parser.errors and not parser.open, (parser.errors, parser.open)
    return parser.starts
