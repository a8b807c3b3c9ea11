"""Diagnostic tasks, always registered (docs/architecture.md contract): ping, sleep, canary."""

from __future__ import annotations

import os
import socket
import time
from typing import TypedDict

from worker import __version__
from worker.app import app, process


class Pong(TypedDict):
    hostname: str
    pid: int
    version: str
    code_version: str
    """WORKER_CODE_VERSION: the build this worker runs (the package version when unset)."""


@app.task(name="cluster.ping", ignore_result=False)
def ping() -> Pong:
    """Who answered: proves a pool consumes its queue and runs the expected package version."""
    return {
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "version": __version__,
        "code_version": process.code_version,
    }


@app.task(name="cluster.sleep")
def sleep(seconds: float) -> float:
    """Load for demos and scaling tests: holds one worker process for `seconds`."""
    if not 0 <= seconds <= 3600:
        raise ValueError(f"seconds must be within [0, 3600], got {seconds}")
    time.sleep(seconds)
    return seconds


@app.task(name="cluster.canary", ignore_result=False)
def canary(token: str) -> str:
    """Returns its token; the smoke test sends N and expects the same N back."""
    return token
