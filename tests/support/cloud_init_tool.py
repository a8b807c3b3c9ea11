"""`cloud-init schema` without installing cloud-init on this machine.

cloud-init is not on PyPI, and installing Debian's package would enable its boot services here.
So the package and the three pure-Python libraries it imports that the project's virtualenv
lacks are fetched with `apt-get download` and unpacked (dpkg-deb -x) under build/tools, then
run with the project's Python. Debian 12 ships cloud-init 22.4, close to Amazon Linux 2023's 22.2.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from infra.vm.files import REPO_ROOT

PACKAGES = ("cloud-init", "python3-configobj", "python3-jsonpatch", "python3-json-pointer")
TOOLS = REPO_ROOT / "build" / "tools" / "cloud-init"


class ToolUnavailableError(RuntimeError):
    pass


def _download(debs: Path) -> None:
    command = ["apt-get", "download", *PACKAGES]
    done = subprocess.run(command, cwd=debs, capture_output=True, text=True, check=False)
    if done.returncode != 0 and "Unable to locate" in done.stderr:
        # A fresh machine has no package lists yet.
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True, check=False)
        done = subprocess.run(command, cwd=debs, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ToolUnavailableError(f"`{' '.join(command)}` failed:\n{done.stderr.strip()}")


def cloud_init_command() -> tuple[list[str], dict[str, str]]:
    """The argv prefix that runs `cloud-init` (append `schema --config-file FILE`), and its environment."""
    root = TOOLS / "root"
    script = root / "usr" / "bin" / "cloud-init"
    TOOLS.mkdir(parents=True, exist_ok=True)
    with (TOOLS / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not script.exists():
            debs = TOOLS / "debs"
            debs.mkdir(exist_ok=True)
            _download(debs)
            for deb in sorted(debs.glob("*.deb")):
                subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    site = root / "usr" / "lib" / "python3" / "dist-packages"
    return [sys.executable, str(script)], {**os.environ, "PYTHONPATH": str(site)}
