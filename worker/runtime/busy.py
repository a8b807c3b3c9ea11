"""Which tasks run on this instance right now, for the drain agent next to the worker.

Each pool process leaves a file `<pid>.<task id>` in the busy directory (CELERY_BUSY_DIR, on a VM
`/run/celery-cluster/busy`, the worker unit's runtime directory) while it runs a task: created at
task_prerun, removed at task_postrun. The drain agent (`worker.drain.protection`) counts the files whose
process is alive, so a pool process killed mid-task does not keep the instance busy for ever.
A marker's modification time is when its task started, so the agent also knows how long each task
has run (it protects the instance only for tasks that have run long, `DRAIN_PROTECT_AFTER_SECONDS`).
A file system write per task start and end is all it costs (no broker, no network), and the agent
needs neither the broker URL nor a connection to it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from celery.signals import task_postrun, task_prerun

logger = logging.getLogger(__name__)

_dir: Path | None = None


def _marker(task_id: str) -> Path | None:
    return None if _dir is None else _dir / f"{os.getpid()}.{task_id}"


def _on_prerun(task_id: str = "", **_: Any) -> None:
    marker = _marker(task_id)
    if marker is None:
        return
    try:
        marker.touch()
    except OSError as exc:
        logger.warning("busy marker %s: %s", marker, exc)


def _on_postrun(task_id: str = "", **_: Any) -> None:
    marker = _marker(task_id)
    if marker is not None:
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()


def install(busy_dir: str | None) -> None:
    global _dir  # noqa: PLW0603 - set once at import, read by the signal receivers
    if busy_dir is None:
        return
    _dir = Path(busy_dir)
    _dir.mkdir(parents=True, exist_ok=True)
    task_prerun.connect(_on_prerun, weak=False, dispatch_uid="celery-cluster-busy-pre")
    task_postrun.connect(_on_postrun, weak=False, dispatch_uid="celery-cluster-busy-post")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def running_task_ages(busy_dir: str | Path, now: float) -> list[float]:
    """Seconds each task running now has run, from its marker's mtime and `now` (time.time()); empty
    if the directory is gone. A marker whose process died, or that vanished as we read it, is skipped."""
    try:
        names = os.listdir(busy_dir)
    except FileNotFoundError:
        return []
    ages = []
    for name in names:
        pid, _, _task = name.partition(".")
        if not (pid.isdigit() and _alive(int(pid))):
            continue
        try:
            started = os.stat(os.path.join(busy_dir, name)).st_mtime
        except FileNotFoundError:
            continue  # the task ended between the listing and the stat
        ages.append(max(0.0, now - started))
    return ages


def running_tasks(busy_dir: str | Path) -> int:
    """Tasks running now on this instance: markers whose process is alive (0 if the directory is gone)."""
    try:
        names = os.listdir(busy_dir)
    except FileNotFoundError:
        return 0
    count = 0
    for name in names:
        pid, _, _task = name.partition(".")
        if pid.isdigit() and _alive(int(pid)):
            count += 1
    return count
