"""The worker's runtime dependencies, every one pinned to the version the tests ran against.

pyproject.toml pins the direct dependencies; their own dependencies are resolved once by pip
into the project's virtualenv. Reading the closure from that virtualenv ships exactly what was
tested, for the target's environment markers (a Windows-only or Python < 3.11 dependency drops out).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, distribution

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


class ClosureError(RuntimeError):
    """A runtime dependency is not installed in the build's virtualenv."""


def _applies(requirement: Requirement, environment: Mapping[str, str], extras: frozenset[str]) -> bool:
    marker: Marker | None = requirement.marker
    if marker is None:
        return True
    if not extras:
        return marker.evaluate({**environment, "extra": ""})
    return any(marker.evaluate({**environment, "extra": extra}) for extra in extras | {""})


def runtime_closure(root: str, environment: Mapping[str, str]) -> dict[str, str]:
    """{canonical name: installed version} of every runtime dependency of `root`, `root` excluded."""
    pins: dict[str, str] = {}
    pending: list[tuple[str, frozenset[str], str]] = [(root, frozenset(), "")]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        name, extras, wanted_by = pending.pop()
        key = (canonicalize_name(name), extras)
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            raise ClosureError(
                f"{name} (needed by {wanted_by}) is not installed in this virtualenv: run `make venv` first"
            ) from None
        if key[0] != canonicalize_name(root):
            pinned = pins.setdefault(key[0], dist.version)
            if pinned != dist.version:  # pragma: no cover - one environment has one version
                raise ClosureError(f"{name}: two versions ({pinned}, {dist.version})")
        for line in dist.requires or []:
            requirement = Requirement(line)
            if not _applies(requirement, environment, extras):
                continue
            if not requirement.specifier.contains(distribution_version(requirement.name), prereleases=True):
                raise ClosureError(
                    f"{requirement.name} {distribution_version(requirement.name)} does not satisfy "
                    f"{name}'s requirement {requirement}: reinstall the virtualenv (`make clean venv`)"
                )
            pending.append((requirement.name, frozenset(requirement.extras), name))
    return dict(sorted(pins.items()))


def distribution_version(name: str) -> str:
    try:
        return distribution(name).version
    except PackageNotFoundError:
        raise ClosureError(f"{name} is not installed in this virtualenv: run `make venv` first") from None
