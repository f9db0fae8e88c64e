"""Compile the continuous-training step (pipelines/pipeline.py) for Kubeflow Pipelines v2.

    python -m tfx_curator.kubeflow.runner --image REGISTRY/tfx-curator:0.1.0 \\
        --pipeline-root gs://BUCKET/root --new-span-dir gs://BUCKET/data/span-07 \\
        --next-span-dir gs://BUCKET/data/span-08 --serving-dir gs://BUCKET/serving \\
        [--served-model-dir gs://BUCKET/serving/1712345678 | --forward-records-dir gs://BUCKET/records/2013-07] \\
        [--budget 0.1 --strategy loss ...] [--beam-arg=--runner=DataflowRunner ...] --output pipeline.json

writes a PipelineJob JSON (KubeflowV2DagRunner; tfx 1.16 has no v1 runner) to submit with the KFP client or
Vertex AI Pipelines. Every step runs in `--image` (kubeflow/Dockerfile: tensorflow/tfx:1.16.0 + this package).

Beam steps (BulkInferrer, Curator, StatisticsGen, Evaluator, ...) run DirectRunner inside their pod unless
`--beam-arg=--runner=...` says otherwise. TFX's BaseBeamExecutor ships only TFX itself to Beam workers, and the
Curator's DoFns live in `tfx_curator`, so the Beam args always carry our code: `--sdk_container_image=<image>`
by default (workers start from the same image; its entrypoint is Beam's SDK harness boot), or with
`--ship setup_file` `--setup_file=/tfx-curator/setup.py` (the source tree inside the image; Beam builds and
stages an sdist). Flags the user passes (`--setup_file`, `--extra_package`, `--sdk_container_image`) win.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from collections.abc import Sequence

from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.pipelines import cli

# Where kubeflow/Dockerfile puts the source tree inside the image (setup.py, schemas/ ...).
IMAGE_SOURCE_DIR = "/tfx-curator"
IMAGE_SCHEMA_PATH = f"{IMAGE_SOURCE_DIR}/schemas/flights_schema.pbtxt"
DEFAULT_PIPELINE_NAME = "tfx-curator-continuous-training"
SHIP_CONTAINER, SHIP_SETUP_FILE = "container", "setup_file"
CODE_SHIPPING_FLAGS = (
    "--setup_file",
    "--extra_package",
    "--extra_packages",
    "--sdk_container_image",
    "--worker_harness_container_image",
)
# The Curator's `splits` is fixed by the pipeline (the new span is the "train" split).
CURATOR_FLAG_FIELDS = tuple(f.name for f in dataclasses.fields(CurationOptions) if f.name != "splits")


def _has_flag(args: Sequence[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in args)


def kubeflow_beam_args(
    image: str, beam_args: Sequence[str] = (), ship: str = SHIP_CONTAINER, source_dir: str = IMAGE_SOURCE_DIR
) -> list[str]:
    """Beam args for every Beam step of the compiled pipeline.

    No `--runner`: DirectRunner in_memory inside the step's pod. Then the code-shipping flag, unless one of
    CODE_SHIPPING_FLAGS is already there.
    """
    from tfx_curator.pipelines.pipeline import direct_beam_args

    args = list(beam_args)
    if not _has_flag(args, "--runner"):
        args = direct_beam_args() + args
    if not any(_has_flag(args, f) for f in CODE_SHIPPING_FLAGS):
        if ship == SHIP_CONTAINER:
            args.append(f"--sdk_container_image={image}")
        elif ship == SHIP_SETUP_FILE:
            args.append(f"--setup_file={source_dir}/setup.py")
        else:
            raise ValueError(f"ship must be {SHIP_CONTAINER!r} or {SHIP_SETUP_FILE!r}, got {ship!r}")
    return args


def compile_pipeline(
    pipeline,
    image: str,
    output_path: str,
    use_pipeline_spec_2_1: bool = True,
    display_name: str | None = None,
) -> dict:
    """Compile a TFX pipeline with KubeflowV2DagRunner to `output_path` (.json, or .yaml for a bare
    PipelineSpec); every component runs in `image`. Returns the PipelineJob as a dict."""
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as v2

    config = v2.KubeflowV2DagRunnerConfig(
        display_name=display_name, default_image=image, use_pipeline_spec_2_1=use_pipeline_spec_2_1
    )
    out_dir, name = os.path.split(os.path.abspath(output_path) if "://" not in output_path else output_path)
    return v2.KubeflowV2DagRunner(config=config, output_dir=out_dir, output_filename=name).run(pipeline)


def create_kubeflow_pipeline(
    *,
    image: str,
    pipeline_root: str,
    new_span_dir: str,
    next_span_dir: str,
    serving_dir: str,
    served_model_dir: str | None = None,
    forward_records_dir: str | None = None,
    curator_options: dict | None = None,
    beam_args: Sequence[str] = (),
    ship: str = SHIP_CONTAINER,
    schema_path: str = IMAGE_SCHEMA_PATH,
    pipeline_name: str = DEFAULT_PIPELINE_NAME,
    **pipeline_kwargs,
):
    """pipelines.pipeline.create_pipeline with paths that exist inside the image and Beam args that ship
    our code. Data roots (spans, serving dir, records) must be readable from the pods, e.g. gs:// paths."""
    from tfx_curator.pipelines.pipeline import create_pipeline

    options = dict(curator_options or {})
    # Kubeflow keeps its own metadata store and ignores the pipeline's MLMD config; a local path keeps
    # compiling free of any access to the pipeline root (create_pipeline's default is a sqlite file there).
    pipeline_kwargs.setdefault(
        "metadata_path", os.path.join(tempfile.gettempdir(), "tfx-curator-kfp-unused.sqlite")
    )
    return create_pipeline(
        pipeline_name,
        pipeline_root,
        new_span_dir,
        next_span_dir,
        serving_dir=serving_dir,
        served_model_dir=served_model_dir,
        forward_records_dir=forward_records_dir,
        budget=options.pop("budget", CurationOptions.budget),
        curator_options=options,
        beam_pipeline_args=kubeflow_beam_args(image, beam_args, ship),
        schema_path=schema_path,
        **pipeline_kwargs,
    )


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tfx_curator.kubeflow.runner",
        description="Compile one continuous-training step (ExampleGen -> BulkInferrer or imported forward "
        "records -> Curator -> StatisticsGen -> Trainer -> Evaluator -> Pusher) to a Kubeflow Pipelines v2 "
        "PipelineJob JSON.",
        formatter_class=cli.HelpFormatter,
    )
    g = parser.add_argument_group("pipeline")
    g.add_argument("--image", required=True, help="image every step runs in (built from kubeflow/Dockerfile)")
    g.add_argument("--pipeline-root", required=True, help="artifact root, e.g. gs://BUCKET/tfx-curator")
    g.add_argument("--new-span-dir", required=True, help="labelled examples the served model just served")
    g.add_argument("--next-span-dir", required=True, help="the following span: the Evaluator's data")
    g.add_argument("--serving-dir", required=True, help="the Pusher's base directory (versioned models)")
    src = g.add_mutually_exclusive_group()
    src.add_argument(
        "--served-model-dir", help="the served SavedModel: BulkInferrer replays its forward passes"
    )
    src.add_argument(
        "--forward-records-dir", help="production forward records laid out as Split-<name>/* (Importer)"
    )
    g.add_argument(
        "--schema-path",
        default=IMAGE_SCHEMA_PATH,
        help="examples schema, as seen from the pods [%(default)s]",
    )
    g.add_argument("--pipeline-name", default=DEFAULT_PIPELINE_NAME, help="[%(default)s]")
    g.add_argument("--epochs", type=int, default=2, help="Trainer epochs [%(default)s]")
    g.add_argument("--train-steps", type=int, default=None, help="Trainer steps (wins over --epochs)")
    g.add_argument(
        "--min-auc",
        type=float,
        default=0.5,
        help="the Evaluator blesses (and the Pusher pushes) only models with this AUC [%(default)s]",
    )
    g.add_argument("--output", default="pipeline.json", help="compiled PipelineJob file [%(default)s]")
    g.add_argument(
        "--spec-version",
        choices=("2.0", "2.1"),
        default="2.1",
        help="KFP pipeline spec schema version [%(default)s]",
    )
    b = parser.add_argument_group("Beam")
    b.add_argument(
        "--beam-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="Beam pipeline option for every Beam step, repeatable (--beam-arg=--runner=DataflowRunner); "
        "default DirectRunner in_memory inside each pod",
    )
    b.add_argument(
        "--ship",
        choices=(SHIP_CONTAINER, SHIP_SETUP_FILE),
        default=SHIP_CONTAINER,
        help="how Beam workers get this package: --sdk_container_image=<image>, or "
        f"--setup_file={IMAGE_SOURCE_DIR}/setup.py [%(default)s]",
    )
    cli.add_option_flags(parser, CURATOR_FLAG_FIELDS)
    return parser


def curator_options_from_args(args: argparse.Namespace) -> dict:
    """Only the options the user changed: the component keeps its own defaults (e.g. record_format is
    'predictionlog' when the records come from BulkInferrer)."""
    options = cli.options_from_args(args, CURATOR_FLAG_FIELDS)  # validates
    defaults = CurationOptions()
    return {
        name: getattr(options, name)
        for name in CURATOR_FLAG_FIELDS
        if getattr(options, name) != getattr(defaults, name)
    }


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = cli.parse_args(parser, sys.argv[1:] if argv is None else argv)
    try:
        options = curator_options_from_args(args)
    except cli.CliError as e:
        parser.error(str(e))
    pipeline = create_kubeflow_pipeline(
        image=args.image,
        pipeline_root=args.pipeline_root,
        new_span_dir=args.new_span_dir,
        next_span_dir=args.next_span_dir,
        serving_dir=args.serving_dir,
        served_model_dir=args.served_model_dir,
        forward_records_dir=args.forward_records_dir,
        curator_options=options,
        beam_args=args.beam_arg,
        ship=args.ship,
        schema_path=args.schema_path,
        pipeline_name=args.pipeline_name,
        epochs=args.epochs,
        train_steps=args.train_steps,
        min_auc=args.min_auc,
    )
    compile_pipeline(pipeline, args.image, args.output, use_pipeline_spec_2_1=args.spec_version == "2.1")
    print(
        f"compiled {args.pipeline_name} ({len(pipeline.components)} steps, image {args.image}) to {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
