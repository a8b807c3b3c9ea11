"""CPU seconds used by processes, read from /proc (Linux): a cost that other load on the
machine does not distort the way it distorts wall-clock throughput."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(stat: str) -> list[str]:
    # The command name (field 2) may hold spaces; everything after its closing parenthesis splits cleanly.
    return stat[stat.rindex(")") + 2 :].split()


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU of every live process in process group `pgid`."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat_fields((entry / "stat").read_text())
        except OSError:  # exited while we looked
            continue
        # After the name: state, ppid, pgrp (index 2), ..., utime (11), stime (12).
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / _TICKS


def process_cpu_seconds(pid: int) -> float:
    fields = _stat_fields(Path(f"/proc/{pid}/stat").read_text())
    return (int(fields[11]) + int(fields[12])) / _TICKS
