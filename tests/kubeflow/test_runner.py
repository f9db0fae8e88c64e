"""Kubeflow Pipelines v2: the continuous-training step compiles with KubeflowV2DagRunner, the Curator step
uses our image, executor and Beam args, and the compiled Curator step runs.

The run test executes the Curator step's container command exactly as the compiled spec has it
(`python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor --executor_class_path ...
--json_serialized_invocation_args {{$}} --json_serialized_inputs_spec_args ... <beam args>`), with `{{$}}`
replaced by an ExecutorInput built from the compiled spec (artifact types, constant parameters) and local
paths, then checks what the step wrote: the curated split equals the pure library's selection for the
compiled parameters, report.json's accounting, and executor_output.json's artifact metadata.
"""

import json
import os
import subprocess
import sys

import helpers
import pytest
import tensorflow as tf
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_entrypoint_utils as entrypoint_utils
from tfx.utils import import_utils

from tfx_curator.components.curator import executor
from tfx_curator.components.curator.options import CurationOptions
from tfx_curator.components.curator.spec import options_from_exec_properties
from tfx_curator.kubeflow import runner

IMAGE = "registry.example.com/tfx-curator:test"
EXECUTOR_CLASS = "tfx_curator.components.curator.executor.Executor"
CURATOR = "Curator"
N = 1500
COMPILED_OPTIONS = {"budget": 0.2, "mode": "global", "seed": 5, "max_weight": 25.0, "window_size": 512}
RUN_FLAG = "--json_serialized_invocation_args"

# ---------------------------------------------------------------------------------------------------------
# Compiling
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("kfp_data"))
    synthetic = helpers.write_synthetic(root, N, seed=9, missing=0.1)
    records_dir = os.path.join(root, "forward_records")
    os.makedirs(os.path.join(records_dir, "Split-records"))
    tf.io.gfile.copy(
        os.path.join(root, "records", "records.gz"), os.path.join(records_dir, "Split-records", "records.gz")
    )
    return root, records_dir, synthetic["train"]


def _compile_to(path: str, records_dir: str, spec_version: str = "2.1") -> str:
    pipeline = runner.create_kubeflow_pipeline(
        image=IMAGE,
        pipeline_root="gs://bucket/root",
        new_span_dir="gs://bucket/data/span-07",
        next_span_dir="gs://bucket/data/span-08",
        serving_dir="gs://bucket/serving",
        forward_records_dir=records_dir,
        curator_options=dict(COMPILED_OPTIONS),
    )
    runner.compile_pipeline(pipeline, IMAGE, path, use_pipeline_spec_2_1=spec_version == "2.1")
    return path


def _compile(tmp_path, records_dir, spec_version="2.1") -> dict:
    path = _compile_to(str(tmp_path / f"pipeline-{spec_version}.json"), records_dir, spec_version)
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def compiled(data, tmp_path_factory):
    _, records_dir, _ = data
    out = tmp_path_factory.mktemp("kfp_compiled")
    return {v: _compile(out, records_dir, v) for v in ("2.0", "2.1")}


def _step(job: dict, task: str):
    spec = job["pipelineSpec"]
    component = spec["components"][spec["root"]["dag"]["tasks"][task]["componentRef"]["name"]]
    container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
    return spec["root"]["dag"]["tasks"][task], component, container


def test_every_step_runs_our_image_and_the_curator_step_our_executor(compiled):
    job = compiled["2.1"]
    spec = job["pipelineSpec"]
    assert spec["schemaVersion"] == "2.1.0"
    tasks = set(spec["root"]["dag"]["tasks"])
    assert {CURATOR, "ForwardRecords", "NewSpanExampleGen", "Trainer", "Evaluator", "Pusher"} <= tasks
    for label, executor_spec in spec["deploymentSpec"]["executors"].items():
        if "container" in executor_spec:
            assert executor_spec["container"]["image"] == IMAGE, label

    task, component, container = _step(job, CURATOR)
    assert container["command"] == [
        "python",
        "-m",
        "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor",
    ]
    args = container["args"]
    assert args[args.index("--executor_class_path") + 1] == EXECUTOR_CLASS
    assert args[args.index(RUN_FLAG) + 1] == "{{$}}"
    assert import_utils.import_class_by_path(EXECUTOR_CLASS) is executor.Executor
    # Beam args: DirectRunner in the pod, and our code shipped to workers of any other runner
    assert "--runner=DirectRunner" in args and f"--sdk_container_image={IMAGE}" in args
    assert not any(a.startswith("--setup_file") for a in args)
    # the Curator reads the new span and the imported forward records; compiled parameters are ours
    assert (
        task["inputs"]["artifacts"]["examples"]["taskOutputArtifact"]["producerTask"] == "NewSpanExampleGen"
    )
    assert (
        task["inputs"]["artifacts"]["forward_records"]["taskOutputArtifact"]["producerTask"]
        == "ForwardRecords"
    )
    params = {k: v["runtimeValue"]["constant"] for k, v in task["inputs"]["parameters"].items()}
    assert params == COMPILED_OPTIONS
    assert set(component["outputDefinitions"]["artifacts"]) == {"curated_examples", "curation_report"}
    # the ExampleGen steps carry their driver (preCacheCheck) with the same image
    _, _, gen = _step(job, "NewSpanExampleGen")
    assert gen["lifecycle"]["preCacheCheck"]["command"]


@pytest.mark.parametrize("version", ["2.0", "2.1"])
def test_compiled_parameters_reach_the_executor_as_the_options(compiled, data, tmp_path, version):
    """Decode the parameters the way kubeflow_v2_run_executor does, then the way the executor does."""
    root, records_dir, _ = data
    executor_input, inputs_spec = _executor_input(
        compiled[version], CURATOR, root, records_dir, str(tmp_path)
    )
    parsed = pipeline_spec_pb2.ExecutorInput()
    json_format.Parse(json.dumps(executor_input), parsed)
    spec = None
    if inputs_spec:
        spec = pipeline_spec_pb2.ComponentInputsSpec()
        json_format.Parse(inputs_spec, spec)
    exec_properties = entrypoint_utils.parse_execution_properties(
        parsed.inputs.parameter_values, parsed.inputs.parameters, spec
    )
    assert options_from_exec_properties(exec_properties) == CurationOptions(**COMPILED_OPTIONS)


def test_yaml_package_loads_in_the_kfp_client(data, tmp_path):
    """Open-source KFP 2.x takes a PipelineSpec YAML: what `Client.create_run_from_pipeline_package` reads."""
    from kfp.client import client as kfp_client

    _, records_dir, _ = data
    doc = kfp_client._extract_pipeline_yaml(_compile_to(str(tmp_path / "pipeline.yaml"), records_dir))
    assert CURATOR in doc.pipeline_spec.root.dag.tasks
    assert doc.pipeline_spec.schema_version == "2.1.0"


def test_beam_args_ship_our_code():
    assert runner.kubeflow_beam_args("img") == [
        "--runner=DirectRunner",
        "--direct_running_mode=in_memory",
        "--sdk_container_image=img",
    ]
    dataflow = runner.kubeflow_beam_args("img", ["--runner=DataflowRunner", "--project=p"])
    assert dataflow == ["--runner=DataflowRunner", "--project=p", "--sdk_container_image=img"]
    assert runner.kubeflow_beam_args("img", ["--runner=FlinkRunner"], ship="setup_file") == [
        "--runner=FlinkRunner",
        f"--setup_file={runner.IMAGE_SOURCE_DIR}/setup.py",
    ]
    own = ["--runner=DataflowRunner", "--extra_package=/x.tar.gz"]
    assert runner.kubeflow_beam_args("img", own) == own  # the user's shipping flag wins


def test_runner_command_line_compiles(data, tmp_path, capsys):
    _, records_dir, _ = data
    out = str(tmp_path / "job.json")
    argv = [
        "--image",
        IMAGE,
        "--pipeline-root",
        "gs://b/root",
        "--new-span-dir",
        "gs://b/s7",
        "--next-span-dir",
        "gs://b/s8",
        "--serving-dir",
        "gs://b/serving",
        "--forward-records-dir",
        records_dir,
        "--budget",
        "0.05",
        "--strategy",
        "grad_norm",
        "--output",
        out,
        "--spec-version",
        "2.0",
        "--",
        "--runner=DataflowRunner",
        "--region=europe-west1",
    ]
    assert runner.main(argv) == 0
    job = json.load(open(out))
    task, _, container = _step(job, CURATOR)
    params = {k: v["runtimeValue"]["constantValue"] for k, v in task["inputs"]["parameters"].items()}
    assert params == {"budget": {"doubleValue": 0.05}, "strategy": {"stringValue": "grad_norm"}}
    assert container["args"][-3:] == [
        "--runner=DataflowRunner",
        "--region=europe-west1",
        f"--sdk_container_image={IMAGE}",
    ]
    with pytest.raises(SystemExit):
        runner.main(argv[:-3] + ["--mix", "7"])
    assert "mix must be in [0, 1]" in capsys.readouterr().err


def test_every_artifact_type_is_importable_in_the_container(compiled):
    """What kubeflow_v2_run_executor does with each artifact's type before it starts the executor."""
    _, component, _ = _step(compiled["2.1"], CURATOR)
    for direction in ("inputDefinitions", "outputDefinitions"):
        for key, definition in component[direction]["artifacts"].items():
            schema = pipeline_spec_pb2.ArtifactTypeSchema()
            json_format.ParseDict(definition["artifactType"], schema)
            class_path = entrypoint_utils._retrieve_class_path(schema)
            assert import_utils.import_class_by_path(class_path), (key, class_path)


# ---------------------------------------------------------------------------------------------------------
# Running the compiled Curator step
# ---------------------------------------------------------------------------------------------------------


def _executor_input(job: dict, task_name: str, data_root: str, records_dir: str, task_root: str):
    """KFP's ExecutorInput (`{{$}}`) for the step, from the compiled spec, with local artifact URIs.

    Input artifacts carry the metadata their producers report (ImportExampleGen: split names, span and
    payload/file format; the forward-records Importer: its split names); every artifact has its type.
    """
    task, component, container = _step(job, task_name)
    input_meta = {
        "examples": (
            os.path.join(data_root, "examples"),
            {
                "split_names": '["train"]',
                "span": 0.0,
                "version": 0.0,
                "payload_format": "FORMAT_TF_EXAMPLE",
                "file_format": "tfrecords_gzip",
            },
        ),
        "forward_records": (records_dir, {"split_names": '["records"]'}),
    }
    inputs = {}
    for key, definition in component["inputDefinitions"].get("artifacts", {}).items():
        uri, metadata = input_meta[key]
        inputs[key] = {
            "artifacts": [
                {
                    "name": f"local/artifacts/{key}",
                    "type": definition["artifactType"],
                    "uri": uri,
                    "metadata": metadata,
                }
            ]
        }
    outputs = {
        key: {
            "artifacts": [
                {
                    "name": f"local/artifacts/{task_name}-{key}",
                    "type": definition["artifactType"],
                    "uri": os.path.join(task_root, key),
                }
            ]
        }
        for key, definition in component["outputDefinitions"]["artifacts"].items()
    }
    schema_2_1 = job["pipelineSpec"]["schemaVersion"] == "2.1.0"
    constants = {
        k: v["runtimeValue"]["constant" if schema_2_1 else "constantValue"]
        for k, v in task["inputs"].get("parameters", {}).items()
    }
    executor_input = {
        "inputs": {"artifacts": inputs, ("parameterValues" if schema_2_1 else "parameters"): constants},
        "outputs": {"artifacts": outputs, "outputFile": os.path.join(task_root, "executor_output.json")},
    }
    args = container["args"]
    inputs_spec = args[args.index("--json_serialized_inputs_spec_args") + 1] if schema_2_1 else None
    return executor_input, inputs_spec


def _container_command(job: dict, task_name: str, executor_input: dict) -> list[str]:
    """The step's command + args from the spec; `python` is this interpreter, `{{$}}` the input JSON."""
    _, _, container = _step(job, task_name)
    command = [sys.executable if c == "python" else c for c in container["command"]]
    args = [json.dumps(executor_input) if a == "{{$}}" else a for a in container["args"]]
    return command + args


def _run_curator_step(job, data, tmp_path):
    root, records_dir, truth = data
    task_root = str(tmp_path / "task")
    executor_input, _ = _executor_input(job, CURATOR, root, records_dir, task_root)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        _container_command(job, CURATOR, executor_input),
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
        timeout=helpers.HANG_GUARD_S,
    )
    assert proc.returncode == 0, proc.stderr[-6000:]
    _check_outputs(task_root, executor_input, truth)


def _check_outputs(task_root: str, executor_input: dict, truth) -> None:
    curated_uri = executor_input["outputs"]["artifacts"]["curated_examples"]["artifacts"][0]["uri"]
    report_uri = executor_input["outputs"]["artifacts"]["curation_report"]["artifacts"][0]["uri"]

    # the curated split is exactly the pure library's selection under the compiled parameters
    files = tf.io.gfile.glob(os.path.join(curated_uri, "Split-train", "data_tfrecord-*.gz"))
    assert files, f"no curated files under {curated_uri}"
    got = helpers.curated_weights(os.path.join(curated_uri, "Split-train", "data_tfrecord-*.gz"))
    assert got == helpers.expected_selection(CurationOptions(**COMPILED_OPTIONS), truth)
    assert 0.1 * N < len(got) < 0.3 * N and max(got.values()) <= 25.0

    with open(os.path.join(report_uri, "report.json")) as f:
        report = json.load(f)
    assert report["splits"]["train"]["accounting"] == {
        "examples_read": N,
        "selected": len(got),
        "not_selected": N - len(got),
        "rejected": 0,
        "holds": True,
    }
    assert report["options"]["budget"] == 0.2 and report["options"]["mode"] == "global"
    assert os.path.exists(os.path.join(report_uri, "report.html"))

    # what the step reports back to KFP: split names and formats of the curated Examples, report figures
    output = pipeline_spec_pb2.ExecutorOutput()
    with open(executor_input["outputs"]["outputFile"]) as f:
        json_format.Parse(f.read(), output)
    curated = json_format.MessageToDict(output.artifacts["curated_examples"].artifacts[0])
    assert curated["uri"] == curated_uri
    assert curated["metadata"]["split_names"] == '["train"]'
    assert curated["metadata"]["file_format"] == "tfrecords_gzip"
    assert curated["metadata"]["payload_format"] == "FORMAT_TF_EXAMPLE"
    rep = json_format.MessageToDict(output.artifacts["curation_report"].artifacts[0])
    assert rep["metadata"]["selected"] == len(got) and rep["metadata"]["examples_read"] == N


@pytest.mark.slow
def test_compiled_curator_step_runs(compiled, data, tmp_path):
    _run_curator_step(compiled["2.1"], data, tmp_path)
