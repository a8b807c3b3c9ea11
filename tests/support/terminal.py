"""Run a command as a person does: in a terminal of a given size (a pseudo-terminal), output as seen."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Colours, cursor moves and the like: what the screen shows without them is what the test reads.
_ESCAPES = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][A-Za-z0-9]|[=>])")


@dataclass(frozen=True)
class Screen:
    returncode: int
    text: str
    """Everything the command wrote, escape sequences removed, lines ending in "\\n"."""


def run_in_terminal(
    argv: Sequence[str],
    *,
    columns: int = 80,
    rows: int = 24,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 240,
) -> Screen:
    """Run `argv` with stdin, stdout and stderr on a `columns` x `rows` pseudo-terminal."""
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    environment = {k: v for k, v in (env or os.environ).items() if k not in ("COLUMNS", "LINES")}
    environment.setdefault("TERM", "xterm-256color")
    process = subprocess.Popen(
        list(argv), stdin=follower, stdout=follower, stderr=follower, env=environment, cwd=cwd, start_new_session=True
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{argv[0]} still running after {timeout:.0f} s")
            ready, _, _ = select.select([leader], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(leader, 65536)
            except OSError:  # the terminal closed: every process holding it exited
                break
            if not data:
                break
            chunks.append(data)
        returncode = process.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
    text = _ESCAPES.sub("", b"".join(chunks).decode(errors="replace")).replace("\r\n", "\n").replace("\r", "")
    return Screen(returncode, text)
