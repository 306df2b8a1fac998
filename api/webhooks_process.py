"""The webhook dispatcher as a process of its own: what ``tierflow serve`` starts beside its
workers (:func:`start` / :func:`stop`) and what ``tierflow webhooks dispatch --loop`` runs
(:func:`loop`).

In its own process the dispatcher gets a share of the CPU of its own: inside an API worker it
was one thread among the worker's many, and under load it got too little of the interpreter
to keep up with the commits (bench/FINDINGS.md). On SQLite its writes take turns with the
workers' group commits (``Database.write``), each one recording a run and fanning out the
events committed meanwhile. It is woken by new outbox events (it looks
every ``WATCH`` seconds, one indexed query) and passes at least every ``poll`` seconds. Its
metrics reach ``/metrics`` through ``PROMETHEUS_MULTIPROC_DIR``, which ``serve`` then sets
for the workers and the dispatcher alike. It ends with ``serve``: on SIGTERM or SIGINT, when
``serve`` ends (Linux: the parent-death signal) and by itself when it finds that the process
that started it is gone (even after ``kill -9``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from typing import Any

from workflow.webhooks_dispatch import Dispatcher

__all__ = ["loop", "start", "stop"]


def start(*, poll: float) -> subprocess.Popen[bytes]:
    """Start ``tierflow webhooks dispatch --loop`` as a child of this process, with this
    process's environment (database URL, webhooks settings, metrics directory)."""
    argv = [sys.executable, "-m", "api.cli", "webhooks", "dispatch", "--loop"]
    argv += ["--poll", f"{poll:g}", "--parent-pid", str(os.getpid()), "--quiet"]
    return subprocess.Popen(argv, env=dict(os.environ), preexec_fn=_end_with_parent)


def _end_with_parent() -> None:
    """Linux: SIGTERM when the parent ends, also when it cannot stop us itself (``kill -9``).
    Elsewhere the dispatcher notices within half a second that it was re-parented."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def stop(proc: subprocess.Popen[bytes], *, timeout: float) -> None:
    """SIGTERM (the pass in progress ends, at most one attempt's timeout), then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait(timeout=10)


def loop(dispatcher: Dispatcher, *, poll: float, parent: int | None) -> None:
    """Run ``dispatcher`` until SIGTERM, SIGINT or - with ``parent`` - that process's end."""
    done = threading.Event()

    def ending(*_: Any) -> None:
        done.set()

    before = {s: signal.signal(s, ending) for s in (signal.SIGTERM, signal.SIGINT)}
    if parent is not None:

        def orphaned() -> None:
            while not done.wait(0.5):
                if os.getppid() != parent:  # re-parented: serve is gone
                    done.set()

        threading.Thread(target=orphaned, name="tierflow-parent-watch", daemon=True).start()
    try:
        dispatcher.run_forever(done, poll=poll)
    finally:
        done.set()
        for s, handler in before.items():
            signal.signal(s, handler)
