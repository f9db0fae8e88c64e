"""tfx-curator: the package root. Sub-packages live in the top-level folders of the same name (see setup.py).

Kept import-light: `import tfx_curator.components.curator.policy.plan` must not pull in TFX. The custom artifact
type is reachable as `tfx_curator.CurationReport` (lazily) because Kubeflow v2 containers import custom artifact
classes by their type name, `<module>.<Class>`.
"""


def __getattr__(name: str):
    if name == "CurationReport":
        from tfx_curator.components.curator.component import CurationReport

        return CurationReport
    raise AttributeError(f"module 'tfx_curator' has no attribute {name!r}")
