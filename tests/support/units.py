"""Reading the image's systemd units the way the rules about them need: `key -> [values]`; and an
EnvironmentFile line the way systemd reads it."""

from __future__ import annotations

import re
from pathlib import Path

from infra.vm.files import IMAGE_DIR
from worker.instance import fetchenv

UNITS_DIR = IMAGE_DIR / "systemd"


def unit_settings(name: str, directory: Path = UNITS_DIR) -> dict[str, list[str]]:
    """A unit's settings over all sections, each key's values in file order (a key may repeat)."""
    settings: dict[str, list[str]] = {}
    for line in (directory / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def restart_prevented(name: str, directory: Path = UNITS_DIR) -> set[str]:
    """The exit statuses after which systemd does not restart the unit (all RestartPreventExitStatus= lines)."""
    return {
        status for line in unit_settings(name, directory).get("RestartPreventExitStatus", []) for status in line.split()
    }


def systemd_unquote(line: str) -> tuple[str, str]:
    """How systemd reads an EnvironmentFile line: bare, or double-quoted with \\ \" \\$ \\` escapes."""
    name, _, quoted = line.partition("=")
    if not quoted.startswith('"'):
        assert fetchenv.BARE.match(quoted), line
        return name, quoted
    assert quoted.endswith('"')
    return name, re.sub(r'\\([\\"$`])', r"\1", quoted[1:-1])
