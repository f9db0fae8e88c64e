"""flights-3m (3,000,000 US flights of 2001) from the pinned npm package vega-datasets@3.2.1, for scale tests.

    from benchmarks import flights3m
    df = flights3m.load()          # date, delay, distance, origin, destination (+ example_id)

The package is fetched once with `npm pack vega-datasets@3.2.1` (a package registry, allowed at run time) into
benchmarks/work/npm/ and only data/flights-3m.parquet is extracted.
"""

from __future__ import annotations

import os
import subprocess
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
NPM_DIR = os.path.join(HERE, "work", "npm")
PACKAGE = "vega-datasets@3.2.1"
TARBALL = "vega-datasets-3.2.1.tgz"
MEMBER = "package/data/flights-3m.parquet"


def parquet_path() -> str:
    path = os.path.join(NPM_DIR, MEMBER)
    if os.path.exists(path):
        return path
    os.makedirs(NPM_DIR, exist_ok=True)
    tarball = os.path.join(NPM_DIR, TARBALL)
    if not os.path.exists(tarball):
        subprocess.run(["npm", "pack", PACKAGE], cwd=NPM_DIR, check=True, capture_output=True)
    with tarfile.open(tarball) as tar:
        tar.extract(MEMBER, NPM_DIR)
    return path


def load():
    """The 3M flights, time-ordered, with a unique `example_id` (row number in the file)."""
    import pandas as pd

    df = pd.read_parquet(parquet_path())
    df["example_id"] = [f"f3m-{i:07d}" for i in range(len(df))]
    return df.sort_values(["date", "example_id"], kind="stable").reset_index(drop=True)
