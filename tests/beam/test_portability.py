"""Runner portability: the curator's Beam job selects the same examples with the same weights on
DirectRunner in_memory, DirectRunner multi_processing and PortableRunner against Beam's local job service
(the portability API that Flink, Spark and Dataflow implement) with LOOPBACK workers and with EXTERNAL
workers from an SDK worker pool (how Flink and Spark run Python), on Flink when a Beam Flink job-server jar
is given, and on re-runs.

The data has what makes a distributed run differ from a local one if anything depends on bundling or
ordering: many windows (mode window), records without examples, duplicate records with later timestamps,
examples without records, and rejects. Curated files must be byte-identical (sorted); report figures equal,
floats to 1e-9 relative (a sum of weights depends on the order a runner merges partial sums in).
"""

import contextlib
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import helpers
import pytest

from tfx_curator.components.curator.beam import job
from tfx_curator.components.curator.options import CurationOptions

N = 3000
# window: per-window thresholds (the paper's approximation); global: one threshold from a combined score
# summary, passed to the sampling step as a side input.
OPTIONS = {
    mode: CurationOptions(
        budget=0.2, mode=mode, window_size=400, strategy="loss", mix=0.3, seed=17, duplicate_policy="latest"
    )
    for mode in ("window", "global")
}
IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
MULTI_PROCESSING = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("portability"))
    data = helpers.write_synthetic(root, N, seed=21, missing=0.1)
    ids, _, preds, norms = data["train"]
    extra = [helpers.make_record(i, 0.9, 1.0, 2000, b"2") for i in ids[:300:3]]  # later duplicates win
    extra += [helpers.make_record(f"orphan-{k}".encode(), 0.5, 1.0, 1000) for k in range(40)]
    extra += [helpers.make_record(b"bad-prediction", 1.5, 1.0, 1000)]  # rejected: not a probability
    helpers.write_tfrecords(os.path.join(root, "records", "records-extra.gz"), extra)
    helpers.write_tfrecords(
        os.path.join(root, "examples", "Split-train", "data-extra.gz"),
        [helpers.make_example(None, 1, x=1.0), helpers.make_example(b"no-label")],  # rejected
    )
    return {
        "examples": {"train": os.path.join(root, "examples", "Split-train", "*")},
        "records": os.path.join(root, "records", "*.gz"),
    }


def _run(inputs, out: str, beam_args: list[str], label: str, mode: str = "window") -> dict:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    start = time.time()
    report = job.run(
        lambda: beam.Pipeline(options=PipelineOptions(beam_args)),
        inputs["examples"],
        inputs["records"],
        OPTIONS[mode],
        os.path.join(out, "curated"),
        os.path.join(out, "report"),
    )
    TIMINGS[f"{label} [{mode}]"] = time.time() - start
    print(f"[portability] {label} [{mode}]: {time.time() - start:.1f}s")
    curated = sorted(
        helpers.read_tfrecords(os.path.join(out, "curated", "Split-train", "data_tfrecord-*.gz"))
    )
    split = report["splits"]["train"]
    return {
        "curated": curated,
        "accounting": split["accounting"],
        "figures": {k: split[k] for k in ("budget", "effective_sample_size", "rejects_by_reason", "labels")},
        "records": report["forward_records"],
        "unbiasedness": split.get("unbiasedness"),
    }


def _close(a, b, path="") -> None:
    """Equal, except floats: sums of weights depend on the order a runner merges partial sums in."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, float) and not isinstance(b, bool) and isinstance(b, (int, float)):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def _assert_same(a: dict, b: dict) -> None:
    assert len(a["curated"]) == len(b["curated"])
    assert a["curated"] == b["curated"], "curated examples differ (ids, weights or bytes)"
    assert a["accounting"] == b["accounting"]
    assert a["records"] == b["records"]
    _close(a["figures"], b["figures"], "report")


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    """reference(mode): the in_memory DirectRunner result every other run must reproduce (run once)."""
    results = {}

    def get(mode: str) -> dict:
        if mode not in results:
            out = str(tmp_path_factory.mktemp(f"in_memory_{mode}"))
            result = _run(inputs, out, IN_MEMORY, "in_memory", mode)
            acc = result["accounting"]
            assert acc["holds"] and acc["examples_read"] == N + 2 and acc["rejected"] == 2
            assert 0.1 * N < acc["selected"] < 0.3 * N
            assert result["records"]["orphans"] == 40 and result["records"]["rejected"] == 1
            assert result["unbiasedness"] is not None
            results[mode] = result
        return results[mode]

    return get


def test_in_memory_rerun_is_identical(inputs, reference, tmp_path):
    _assert_same(reference("window"), _run(inputs, str(tmp_path), IN_MEMORY, "in_memory re-run"))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["window", "global"])
def test_multi_processing_is_identical(inputs, reference, tmp_path, mode):
    _assert_same(reference(mode), _run(inputs, str(tmp_path), MULTI_PROCESSING, "multi_processing", mode))


def _free_ports(n: int = 1) -> list[int]:
    """n distinct free ports (all held open while picking)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in socks]


def _venv_env() -> dict:
    """This interpreter's bin first on PATH: the worker pool starts SDK workers as plain `python`."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


@contextlib.contextmanager
def _service(name: str, cmd: list[str], port: int, log_dir, env: dict | None = None, stop=signal.SIGTERM):
    """Run `cmd` in its own process group until it listens on `port`; on exit send it `stop`, then end
    whatever of its group outlives a grace period (workers it started)."""
    log = open(log_dir / f"{name}.log", "w+")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.time() + helpers.HANG_GUARD_S
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"{name} exited with {proc.returncode}:\n{log.read()[-3000:]}")
            try:
                socket.create_connection(("localhost", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    pytest.fail(f"{name} did not start listening within {helpers.HANG_GUARD_S} s")
                time.sleep(0.5)
        yield proc
    finally:
        _stop(proc, stop)
        log.close()


def _stop(proc: subprocess.Popen, stop: int, grace_s: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(stop)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for sig in (signal.SIGTERM, signal.SIGKILL):  # the group's leftovers (leader already reaped)
        deadline = time.time() + grace_s
        try:
            os.killpg(proc.pid, sig)
            while time.time() < deadline:
                time.sleep(0.2)
                os.killpg(proc.pid, 0)  # raises once no process of the group is left
        except ProcessLookupError:
            return


@pytest.fixture(scope="module")
def job_service(tmp_path_factory):
    """Beam's local job service (the portability job API) in a subprocess; yields its endpoint."""
    (port,) = _free_ports()
    cmd = [sys.executable, "-m", "apache_beam.runners.portability.local_job_service_main", f"--port={port}"]
    with _service("job_service", cmd, port, tmp_path_factory.mktemp("job_service")):
        yield f"localhost:{port}"


@pytest.fixture(scope="module")
def worker_pool(tmp_path_factory):
    """Beam's SDK worker pool (what a Flink or Spark task manager's Python sidecar runs); yields its address.

    Each worker a runner asks for is a separate `python` process (the first on PATH) started by the pool.
    Beam's local job service asks for one per job (it ignores --direct_num_workers)."""
    (port,) = _free_ports()
    cmd = [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={port}"]
    log_dir = tmp_path_factory.mktemp("worker_pool")
    # SIGINT: the pool stops serving, then stops and reaps its workers (atexit)
    with _service("worker_pool", cmd, port, log_dir, env=_venv_env(), stop=signal.SIGINT):
        yield f"localhost:{port}"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["window", "global"])
def test_portable_runner_is_identical(inputs, reference, job_service, tmp_path, mode):
    args = ["--runner=PortableRunner", f"--job_endpoint={job_service}", "--environment_type=LOOPBACK"]
    _assert_same(reference(mode), _run(inputs, str(tmp_path), args, "PortableRunner LOOPBACK", mode))


@pytest.mark.slow
@pytest.mark.timeout(helpers.HANG_GUARD_S)
@pytest.mark.parametrize("mode", ["window", "global"])
def test_portable_runner_external_workers_is_identical(
    inputs, reference, job_service, worker_pool, tmp_path, mode
):
    """The job's Python code in an SDK worker process started by an external pool, as Flink and Spark run it:
    elements, side inputs and state cross the Fn API between the job service and that process."""
    args = [
        "--runner=PortableRunner",
        f"--job_endpoint={job_service}",
        "--environment_type=EXTERNAL",
        f"--environment_config={worker_pool}",
    ]
    _assert_same(reference(mode), _run(inputs, str(tmp_path), args, "PortableRunner EXTERNAL", mode))


FLINK_JAR_ENV = "TFX_CURATOR_FLINK_JOB_SERVER_JAR"


def _flink_job_server_jar() -> str:
    """The jar FLINK_JAR_ENV names; skip without one (Flink job servers come only from Maven), fail if the
    one named cannot run."""
    jar = os.environ.get(FLINK_JAR_ENV)
    if not jar:
        pytest.skip(
            f"{FLINK_JAR_ENV} is not set: point it at a Beam Flink job-server jar of this Beam version "
            "(e.g. beam-runners-flink-1.18-job-server-2.59.0.jar from Maven Central) to run on Flink"
        )
    if not os.path.isfile(jar):
        pytest.fail(f"{FLINK_JAR_ENV}={jar} is not a file")
    if shutil.which("java") is None:
        pytest.fail(f"{FLINK_JAR_ENV} is set but java is not on PATH (the job server is a Java program)")
    return jar


def _flink_job_server_command(
    jar: str, job_port: int, artifact_port: int, expansion_port: int, artifacts_dir: str
):
    """The command Beam's own FlinkRunner runs for --flink_job_server_jar, on an embedded Flink cluster."""
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.flink_runner import FlinkJarJobServer

    options = PipelineOptions(
        [
            f"--flink_job_server_jar={jar}",
            "--flink_master=[local]",
            f"--job_port={job_port}",
            f"--artifact_port={artifact_port}",
            f"--expansion_port={expansion_port}",
            f"--artifacts_dir={artifacts_dir}",
        ]
    )
    cmd, endpoint = FlinkJarJobServer(options).subprocess_cmd_and_endpoint()
    assert endpoint == f"localhost:{job_port}", endpoint
    return [str(arg) for arg in cmd]


def test_flink_job_server_command(tmp_path):
    jar = tmp_path / "beam-runners-flink-1.18-job-server-2.59.0.jar"
    jar.write_bytes(b"")
    assert _flink_job_server_command(str(jar), 8099, 8098, 8097, "/arts") == [
        "java",
        "-jar",
        str(jar),
        "--flink-master",
        "[local]",
        "--artifacts-dir",
        "/arts",
        "--job-port",
        "8099",
        "--artifact-port",
        "8098",
        "--expansion-port",
        "8097",
    ]


def test_flink_runs_only_with_a_usable_jar(tmp_path, monkeypatch):
    monkeypatch.delenv(FLINK_JAR_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match=FLINK_JAR_ENV):
        _flink_job_server_jar()
    monkeypatch.setenv(FLINK_JAR_ENV, str(tmp_path / "missing.jar"))
    with pytest.raises(pytest.fail.Exception, match="is not a file"):
        _flink_job_server_jar()
    (tmp_path / "job-server.jar").write_bytes(b"")
    monkeypatch.setenv(FLINK_JAR_ENV, str(tmp_path / "job-server.jar"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no java
    with pytest.raises(pytest.fail.Exception, match="java is not on PATH"):
        _flink_job_server_jar()


@pytest.fixture(scope="module")
def flink_job_server(tmp_path_factory):
    """Beam's Flink job server from the jar FLINK_JAR_ENV names, on an embedded Flink cluster; yields its
    job endpoint (the artifact endpoint is announced through it)."""
    jar = _flink_job_server_jar()
    job_port, artifact_port, expansion_port = _free_ports(3)
    log_dir = tmp_path_factory.mktemp("flink_job_server")
    cmd = _flink_job_server_command(jar, job_port, artifact_port, expansion_port, str(log_dir / "artifacts"))
    with _service("flink_job_server", cmd, job_port, log_dir):
        yield f"localhost:{job_port}"


@pytest.mark.slow
@pytest.mark.timeout(helpers.HANG_GUARD_S)
@pytest.mark.parametrize("mode", ["window", "global"])
def test_flink_is_identical(flink_job_server, worker_pool, inputs, reference, tmp_path, mode):
    """Flink with parallelism 2, the job's Python code in SDK workers from the external pool."""
    args = [
        "--runner=PortableRunner",
        f"--job_endpoint={flink_job_server}",
        "--environment_type=EXTERNAL",
        f"--environment_config={worker_pool}",
        "--parallelism=2",
    ]
    _assert_same(reference(mode), _run(inputs, str(tmp_path), args, "Flink EXTERNAL", mode))
