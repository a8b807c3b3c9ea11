"""The drain agent pointed at real processes: the hook and instance it drains for, a stop action that
signals a worker process instead of a systemd unit, and a process that ignores the stop."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from infra.local.workers import WorkerProcess
from tests.support.lifecycle_stub import LifecycleStub
from worker.drain.agent import DrainAgent, build_agent
from worker.drain.settings import load_settings
from worker.instance.imds import Imds

HOOK = "celery-cluster-dev-default-drain"
ASG = "celery-cluster-dev-default"
INSTANCE = "i-0abc1234def567890"


@dataclass
class ProcessControl:
    """The agent's stop action pointed at a real worker process instead of a systemd unit."""

    worker: WorkerProcess

    def stop(self) -> None:
        self.worker.terminate()

    def requeue(self) -> None:
        if self.worker.running():
            assert self.worker.process is not None
            self.worker.process.send_signal(signal.SIGQUIT)

    def stopped(self) -> bool:
        return not self.worker.running()


def start_stubborn(seconds: float) -> subprocess.Popen[bytes]:
    """A process that ignores SIGTERM (and the SIGQUIT that requeues before the deadline), returned once it
    does: a signal during a slow interpreter start-up would still end it and make a test that needs it
    stubborn pass or fail by the machine's load."""
    code = (
        "import signal, time\n"
        "for s in (signal.SIGTERM, signal.SIGQUIT): signal.signal(s, signal.SIG_IGN)\n"
        f"print('ignoring', flush=True); time.sleep({seconds})"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdout.readline() == b"ignoring\n"
    return process


def agent_for(endpoint: str, worker: WorkerProcess, stub: LifecycleStub) -> DrainAgent:
    settings = load_settings(
        lifecycle_hook_name=HOOK,
        imds_endpoint=endpoint,
        poll_interval=0.2,
        heartbeat_interval=0.5,
        timeout=60,
        spot_margin=5,
    )
    return build_agent(settings, worker=ProcessControl(worker), autoscaling=stub.client, imds=Imds(endpoint=endpoint))


def wait_for_active(app: object, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        active = app.control.inspect(timeout=1.0).active() or {}  # type: ignore[attr-defined]
        if sum(len(tasks) for tasks in active.values()) >= count:
            return
    raise TimeoutError(f"fewer than {count} tasks in flight after {timeout} s")
