"""interrupt.Guard (the CLI's signal handling) and the progress lines, without a Beam job."""

import threading
import time

import pytest

from tfx_curator.components.curator.reading import tfrecord_files
from tfx_curator.pipelines import cli, interrupt


def test_guard_runs_work_in_a_worker_thread_and_ticks_while_waiting():
    ticks, threads = [], []

    def work():
        threads.append(threading.current_thread())
        time.sleep(0.5)
        return 42

    with interrupt.Guard("test", lambda: None) as guard:
        assert guard.run(work, ticks.append, every=0.1) == 42
    assert threads[0] is not threading.main_thread()
    assert len(ticks) >= 3 and ticks == sorted(ticks)


def test_guard_hands_over_the_work_exception():
    def work():
        raise KeyError("boom")

    with interrupt.Guard("test", lambda: None) as guard, pytest.raises(KeyError, match="boom"):
        guard.run(work)


def test_progress_line(capsys, monkeypatch):
    monkeypatch.setitem(tfrecord_files.PROGRESS, "records", 12000)
    monkeypatch.setitem(tfrecord_files.PROGRESS, "files", 3)
    cli.progress_line(20.4)
    assert capsys.readouterr().out == "[tfx-curator] 20 s: 12000 records read, 3 files done\n"


def test_a_failing_tick_never_ends_the_run(monkeypatch):
    """A progress line read a module while it was being imported (AttributeError): the run went on."""

    def tick(_):
        raise AttributeError("partially initialized module")

    with interrupt.Guard("test", lambda: None) as guard:
        assert guard.run(lambda: time.sleep(0.3) or 7, tick, every=0.05) == 7
    monkeypatch.setitem(
        __import__("sys").modules, "tfx_curator.components.curator.reading.tfrecord_files", object()
    )
    cli.progress_line(1.0)  # a module without PROGRESS yet: "starting"
