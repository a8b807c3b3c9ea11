"""The EC2 Image Builder component document (`image/imagebuilder/component.yaml`) and its parameters.

The document is static; the stack passes each build's artefact locations and sha256 as
parameters, so a changed wheel changes the recipe and produces a new image.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any, Final

import yaml

from infra.vm import files

PHASES: Final = ("build", "validate", "test")
# The actions this document may use (AWSTOE action modules).
ACTIONS: Final = frozenset({"ExecuteBash", "S3Download", "DeleteFolder", "CreateFile", "CreateFolder", "Reboot"})
PARAMETER_REF: Final = re.compile(r"\{\{\s*(\w+)\s*\}\}")
STEP_NAME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,127}$")
# Component `data` is limited to 16,000 characters.
DATA_LIMIT: Final = 16000


def component_text() -> str:
    return files.COMPONENT_DOCUMENT.read_text()


def component_parameters(
    wheelhouse_uri: str, wheelhouse_sha256: str, image_files_uri: str, image_files_sha256: str
) -> dict[str, str]:
    return {
        "WheelhouseS3Uri": wheelhouse_uri,
        "WheelhouseSha256": wheelhouse_sha256,
        "ImageFilesS3Uri": image_files_uri,
        "ImageFilesSha256": image_files_sha256,
    }


def declared_parameters(document: dict[str, Any]) -> list[str]:
    return [name for entry in document.get("parameters", []) for name in entry]


def download_folder_problems(document: dict[str, Any]) -> list[str]:
    """S3Download destinations whose folder no earlier CreateFolder step of the phase creates.

    "All folders in the destination path must exist prior to download, or the download fails."
    https://docs.aws.amazon.com/imagebuilder/latest/userguide/toe-action-modules.html#action-modules-s3download
    """
    found: list[str] = []
    for phase in document.get("phases") or []:
        created: set[PurePosixPath] = set()
        for step in phase.get("steps") or []:
            inputs = step.get("inputs") or []
            if step.get("action") == "CreateFolder":
                created |= {PurePosixPath(str(item.get("path"))) for item in inputs}
            elif step.get("action") == "S3Download":
                for item in inputs:
                    folder = PurePosixPath(str(item.get("destination", ""))).parent
                    if folder not in created:
                        where = f"{phase.get('name')}/{step.get('name')}"
                        found.append(f"{where}: S3Download to {folder}/ before any CreateFolder step creates it")
    return found


def problems(text: str) -> list[str]:
    """Structural problems of a component document; empty when it is well formed."""
    found: list[str] = []
    if len(text) > DATA_LIMIT:
        found.append(f"document is {len(text)} characters, over Image Builder's {DATA_LIMIT}")
    document = yaml.safe_load(text)
    if not isinstance(document, dict):
        return [*found, "document is not a mapping"]
    found += _top_level_problems(document)
    phases = document.get("phases") or []
    found += _phase_problems(phases)
    for phase in phases:
        found += _step_problems(phase)
    found += download_folder_problems(document)
    declared = declared_parameters(document)
    used = set(PARAMETER_REF.findall(text))
    found += [f"parameter {name} is used but not declared" for name in sorted(used - set(declared))]
    found += [f"parameter {name} is declared but never used" for name in sorted(set(declared) - used)]
    return found


def _top_level_problems(document: dict[str, Any]) -> list[str]:
    found = [f"missing top-level {key!r}" for key in ("name", "schemaVersion", "phases") if key not in document]
    if str(document.get("schemaVersion")) != "1.0":
        found.append(f"schemaVersion must be 1.0, got {document.get('schemaVersion')!r}")
    for entry in document.get("parameters", []):
        for name, spec in entry.items():
            if not isinstance(spec, dict) or spec.get("type") != "string":
                found.append(f"parameter {name}: type must be string")
    return found


def _phase_problems(phases: list[dict[str, Any]]) -> list[str]:
    names = [phase.get("name") for phase in phases]
    found = [] if "build" in names else ["no build phase"]
    found += [f"unknown phase {name!r}" for name in names if name not in PHASES]
    if len(set(names)) != len(names):
        found.append("a phase appears twice")
    return found


def _step_problems(phase: dict[str, Any]) -> list[str]:
    found: list[str] = []
    steps = phase.get("steps") or []
    if not steps:
        found.append(f"phase {phase.get('name')}: no steps")
    step_names = [step.get("name") for step in steps]
    if len(set(step_names)) != len(step_names):
        found.append(f"phase {phase.get('name')}: step names repeat")
    for step in steps:
        where = f"{phase.get('name')}/{step.get('name')}"
        action, inputs = step.get("action"), step.get("inputs")
        if not STEP_NAME.match(str(step.get("name"))):
            found.append(f"{where}: step name must be alphanumeric")
        if action not in ACTIONS:
            found.append(f"{where}: unknown action {action!r}")
        if "inputs" not in step:
            found.append(f"{where}: no inputs")
        if action == "ExecuteBash" and not (inputs or {}).get("commands"):
            found.append(f"{where}: ExecuteBash without commands")
        downloads = (inputs or []) if action == "S3Download" else []
        found += [
            f"{where}: S3Download source must be a parameter, not a fixed location"
            for item in downloads
            if not PARAMETER_REF.fullmatch(str(item.get("source", "")).strip())
        ]
    return found
