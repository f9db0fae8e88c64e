"""Schemas shipped with tfx-curator: the demo examples' schema and the plain forward-record schema."""

import os

SCHEMA_DIR = os.path.dirname(os.path.abspath(__file__))
FLIGHTS_SCHEMA = "flights_schema.pbtxt"
FORWARD_RECORD_SCHEMA = "forward_record.pbtxt"


def schema_file(name: str) -> str:
    """Absolute path of a schema shipped in this folder."""
    path = os.path.join(SCHEMA_DIR, name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no schema {name!r} in {SCHEMA_DIR}")
    return path


def load_schema(name: str):
    """The schema as a tensorflow_metadata Schema proto (name of a file here, or a path)."""
    import tensorflow_data_validation as tfdv

    return tfdv.load_schema_text(name if os.path.isabs(name) else schema_file(name))
