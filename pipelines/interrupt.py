"""Ctrl-C and SIGTERM for the command line: stop within a second, remove temporary output, one line, exit 130/143.

A Beam job running in the main thread does not stop cleanly on SIGINT: the KeyboardInterrupt lands wherever the
main thread happens to be (once it surfaced as `SystemError: <built-in function __import__> returned a result
with an exception set` and exit 0; once the process hung at 0% CPU, waiting for Beam's worker threads). Here the
work runs in a worker thread while the main thread only waits, so a signal handler runs at once: it removes the
staging folder (the published output is untouched) and ends the process with `os._exit`, which does not wait for
Beam's threads. A signal during the publish renames is held until they are done, so they are never cut in half.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Guard:
    """Install with `with Guard(prog, cleanup) as guard:`; `guard.run(work)` runs `work()` in a worker thread.

    cleanup: called once on a signal (before the process ends), e.g. to delete the staging folder.
    `with guard.critical():` holds signals back while a block runs (the publish renames).
    """

    def __init__(self, prog: str, cleanup: Callable[[], None]):
        self._prog = prog
        self._cleanup = cleanup
        self._lock = threading.Lock()
        self._critical = False
        self._pending: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> Guard:
        if threading.current_thread() is threading.main_thread():  # only the main thread may install handlers
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        with self._lock:
            if self._critical:
                self._pending = signum
                return
        self._stop(signum, "temporary output removed, the output folder is unchanged")

    def _stop(self, signum: int, what: str) -> None:
        try:
            self._cleanup()
        finally:
            name = signal.Signals(signum).name
            sys.stderr.write(f"{self._prog}: interrupted by {name}: {what}\n")
            sys.stderr.flush()
            sys.stdout.flush()
            os._exit(128 + signum)

    def critical(self) -> _Critical:
        return _Critical(self)

    def run(
        self, work: Callable[[], object], tick: Callable[[float], None] | None = None, every: float = 10.0
    ):
        """work() in a worker thread; the main thread waits (and stays free to handle signals), calling
        tick(seconds since the start) every `every` seconds. Returns work's result or raises its exception."""
        result: dict = {}

        def target():
            try:
                result["value"] = work()
            except BaseException as e:  # noqa: BLE001 - handed over to the main thread
                result["error"] = e

        worker = threading.Thread(target=target, name="curation", daemon=True)
        started = time.monotonic()
        next_tick = started + every
        worker.start()
        while worker.is_alive():
            worker.join(min(0.2, every))
            now = time.monotonic()
            if tick is not None and worker.is_alive() and now >= next_tick:
                try:
                    tick(now - started)
                except Exception:  # noqa: BLE001 - a progress line must never end the run
                    tick = None
                next_tick = now + every
        if "error" in result:
            raise result["error"]
        return result.get("value")


class _Critical:
    def __init__(self, guard: Guard):
        self._guard = guard

    def __enter__(self) -> None:
        with self._guard._lock:
            self._guard._critical = True

    def __exit__(self, *exc) -> None:
        with self._guard._lock:
            self._guard._critical = False
            pending = self._guard._pending
        if pending is not None:
            self._guard._stop(pending, "the new output was published before stopping")
