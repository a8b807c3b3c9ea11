"""README.md and docs/ cannot drift from the code they document.

Both directions: every stack config key (`celery-cluster:...`), `scripts/...` command and flag,
`make` target and environment variable the docs name exists in the code, and every config key and
environment variable the code reads appears in the docs. The fenced shell commands of the README are
checked by tests/integration/test_readme_commands.py.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections import abc
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import pytest
import typer
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from infra.cli.entry import script_app
from infra.config import PROJECT, REGION_KEY, StackConfig
from worker.runtime.settings import ENV_PREFIX, WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOCS: dict[str, str] = {"README.md": README} | {
    f"docs/{path.name}": path.read_text() for path in sorted((ROOT / "docs").glob("*.md"))
}
ALL_DOCS = "\n".join(DOCS.values())
# Where a name the docs mention may be defined: everything that is not prose.
CODE_DIRS = ("infra", "worker", "celery_cluster_client", "policy", "image", "scripts", "tests", ".github")
CODE_FILES = ("Makefile", "pyproject.toml", "Pulumi.yaml")
# Modules whose pydantic-settings models read the environment (prefix + field name).
SETTINGS_MODULES = (
    "worker.runtime.settings",
    "worker.drain.settings",
    "worker.instance.fetchenv",
    "worker.scheduler.settings",
)
# `celery-cluster:<name>` strings that are not config keys: AWS tag keys, Redis key prefixes.
NOT_CONFIG = {
    "image": "the tag image retention selects the stack's AMIs by",
    "scheduler": "SCHEDULER_KEY_PREFIX's default, a Redis key prefix",
}
# Variables the docs name that this repository does not read: they belong to other programs.
NOT_OURS = {
    "PULUMI_CONFIG_PASSPHRASE": "Pulumi CLI's secrets provider passphrase (README, GitHub setup)",
    "PULUMI_BACKEND_URL": "Pulumi CLI's state backend (a GitHub variable the workflows pass on)",
    "AWS_REGION": "AWS CLI and SDK region (a GitHub variable)",
    "REMAP_SIGTERM": "Celery's own variable; docs say why start-worker no longer sets it",
}


def _table_rows(start: str, end: str) -> list[str]:
    block = README.split(start, 1)[1].split(end, 1)[0]
    return re.findall(r"^\| `([A-Z_]+)` \|", block, re.M)


def test_worker_environment_table_matches_settings() -> None:
    documented = _table_rows("<!-- worker-env:start -->", "<!-- worker-env:end -->")
    expected = [f"{ENV_PREFIX}{name.upper()}" for name in WorkerSettings.model_fields]
    assert sorted(documented) == sorted(expected)


# --- make targets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_make_targets_in_the_docs_exist(doc: str) -> None:
    makefile = (ROOT / "Makefile").read_text()
    # `make x` in a code span, or a code line that starts with it.
    for target in set(re.findall(r"(?:`|^\s*)make ([a-z][a-z-]*)", DOCS[doc], re.M)):
        assert re.search(rf"^{target}:", makefile, re.M), f"{doc} mentions `make {target}`, not in the Makefile"


# --- scripts and their flags ----------------------------------------------------------------------


def _module_of(script: str) -> str:
    match = re.search(r"_run\" ([a-z_]+)", (ROOT / "scripts" / script).read_text())
    assert match, f"scripts/{script} does not run an infra.cli module through scripts/_run"
    return f"infra.cli.{match.group(1)}"


def _all_options(command: Any) -> set[str]:
    """Options of a click command and of its subcommands (Typer ships its own copy of click)."""
    options = {"--help", "-h"}
    for param in command.params:
        options.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("-"))
    for sub in getattr(command, "commands", {}).values():
        options |= _all_options(sub)
    return options


@cache
def script_options(script: str) -> frozenset[str]:
    """The options `scripts/<script>` accepts, read from its Typer app (as `--help` lists them)."""
    module = importlib.import_module(_module_of(script))
    app = getattr(module, "app", None)
    if not isinstance(app, typer.Typer):
        app = script_app(script, module.__doc__)
        app.command()(module.main)
    return frozenset(_all_options(typer.main.get_command(app)))


def _script_mentions() -> Iterator[tuple[str, str, str]]:
    """(doc, script, option) for each `scripts/<name> ... --option` in a code span or a code line."""
    for doc, text in DOCS.items():
        for match in re.finditer(r"scripts/([a-z][a-z_-]*)([^`\n|#;&)]*)", text):
            script, rest = match.groups()
            yield doc, script, ""
            for option in re.findall(r"(?<![\w-])(--?[a-z][a-z0-9-]*)", rest):
                yield doc, script, option


def test_every_script_and_flag_in_the_docs_exists() -> None:
    missing = []
    for doc, script, option in _script_mentions():
        if not (ROOT / "scripts" / script).is_file():
            missing.append(f"{doc}: scripts/{script} does not exist")
        elif option and option not in script_options(script):
            missing.append(f"{doc}: scripts/{script} has no option {option}")
    assert sorted(set(missing)) == []


# --- stack config keys ----------------------------------------------------------------------------


def _unwrap(annotation: Any) -> Any:
    while get_origin(annotation) in (Annotated, UnionType, Union):
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    return annotation


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    return {(field.alias or name): field.annotation for name, field in model.model_fields.items()}


def key_exists(path: str) -> bool:
    """`pools.default.spot.enabled` is a key of StackConfig (map keys, like a pool's name, are free)."""
    current: Any = StackConfig
    for part in [p for p in re.split(r"\.|\[\d+\]", path) if p]:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = _fields(current)
            if part not in fields:
                return False
            current = fields[part]
        elif get_origin(current) in (Mapping, abc.Mapping, dict):
            current = get_args(current)[1]
        elif get_origin(current) in (tuple, list):
            current = get_args(current)[0]
        else:
            return False
    return True


CONFIG_KEY = re.compile(rf"{PROJECT}:([A-Za-z][A-Za-z0-9_.<>\[\]-]*[A-Za-z0-9>\]])(?![A-Za-z0-9_<>\[\]:-])")


def test_every_config_key_in_the_docs_exists() -> None:
    missing = []
    for doc, text in DOCS.items():
        # Not followed by ":": `celery-cluster:running:<queue>` is a Redis key, not config.
        for path in re.findall(
            rf"{PROJECT}:([A-Za-z][A-Za-z0-9_.<>\[\]-]*[A-Za-z0-9>\]])(?![A-Za-z0-9_<>\[\]:-])", text
        ):
            if path in NOT_CONFIG:
                continue
            if not key_exists(path.replace("<name>", "x").replace("<pool>", "x")):
                missing.append(f"{doc}: {PROJECT}:{path}")
    assert sorted(set(missing)) == []


def _config_keys(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    for key, annotation in _fields(model).items():
        if key in ("stack", REGION_KEY):
            continue
        inner = _unwrap(annotation)
        if get_origin(inner) in (Mapping, abc.Mapping, dict, tuple, list):
            inner = _unwrap(get_args(inner)[-1])
        yield prefix + key
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            nested = "" if prefix or key == "pools" else f"{key}."
            yield from _config_keys(inner, prefix + nested if key != "pools" else "")


def _documented(key: str) -> bool:
    return f"`{key}`" in ALL_DOCS or f"{PROJECT}:{key}" in ALL_DOCS or f"`{key}." in ALL_DOCS


def test_every_config_key_the_code_reads_is_in_the_docs() -> None:
    undocumented = [key for key in _config_keys(StackConfig) if not _documented(key)]
    assert undocumented == []


# --- environment variables ------------------------------------------------------------------------


@cache
def code_text() -> str:
    files = [ROOT / name for name in CODE_FILES]
    for directory in CODE_DIRS:
        files += [p for p in (ROOT / directory).rglob("*") if p.is_file() and p.suffix not in (".md", ".png", ".pyc")]
    return "\n".join(p.read_text(errors="ignore") for p in files)


VARIABLE = re.compile(r"`((?:CELERY|WORKER|DRAIN|SCHEDULER|BENCH|PULUMI|AWS|REDIS|AMQP|REMAP)_[A-Z0-9_]*[A-Z0-9])")


def test_every_variable_in_the_docs_exists_in_the_code() -> None:
    missing = []
    for doc, text in DOCS.items():
        for name in set(VARIABLE.findall(text)) - set(NOT_OURS) - settings_variables():
            if not re.search(rf"\b{name}\b", code_text()):
                missing.append(f"{doc}: {name}")
    assert sorted(missing) == []


def settings_variables() -> set[str]:
    names = set()
    for module_name in SETTINGS_MODULES:
        module = importlib.import_module(module_name)
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, BaseSettings) and obj.__module__ == module_name:
                prefix = obj.model_config.get("env_prefix", "")
                names |= {f"{prefix}{name.upper()}" for name in obj.model_fields}
    # Variables read one by one (the publisher's, the producer client's): `environ.get("X")`, `environ["X"]`.
    read = re.compile(r"environ(?:\.get\(|\[)\s*\"([A-Z][A-Z0-9_]+)\"|_env\(environ, \"([A-Z][A-Z0-9_]+)\"")
    for directory in ("worker", "celery_cluster_client"):
        for path in (ROOT / directory).rglob("*.py"):
            names |= {a or b for a, b in read.findall(path.read_text())}
    for script in (ROOT / "image" / "bin").iterdir():
        names |= set(re.findall(r"\$\{((?:WORKER|CELERY|DRAIN|SCHEDULER)_[A-Z_]+)", script.read_text()))
    return names


def test_every_variable_the_code_reads_is_in_the_docs() -> None:
    undocumented = sorted(name for name in settings_variables() if f"`{name}`" not in ALL_DOCS)
    assert undocumented == []


# "assumption `NAME`" or "named assumption `NAME`" in the docs: NAME is a constant in the code.
NAMED_ASSUMPTION = re.compile(r"assumption `([A-Z][A-Z0-9_]*)`", re.IGNORECASE)
ASSUMPTION_PACKAGES = ("infra", "worker", "celery_cluster_client")


def assumption_definitions() -> dict[str, str]:
    """Module-level constants whose comment or docstring states an assumption: name -> module path.
    A mention elsewhere (a test, a comment) does not count: the default has to live in one place."""
    found: dict[str, str] = {}
    for package in ASSUMPTION_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text()
            lines = source.splitlines()
            body = ast.parse(source).body
            for index, node in enumerate(body):
                target: ast.expr | None = node.target if isinstance(node, ast.AnnAssign) else None
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target = node.targets[0]
                if not isinstance(target, ast.Name):
                    continue
                # The comment lines above it, its line, and a docstring right after it.
                start = node.lineno - 1
                while start > 0 and lines[start - 1].lstrip().startswith("#"):
                    start -= 1
                text = "\n".join(lines[start : node.end_lineno])
                following = body[index + 1] if index + 1 < len(body) else None
                if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                    text += str(following.value.value)
                if "assum" in text.lower():
                    found[target.id] = str(path.relative_to(ROOT))
    return found


def test_every_assumption_the_docs_name_is_a_constant_in_the_code() -> None:
    named = {(doc, name) for doc, text in DOCS.items() for name in NAMED_ASSUMPTION.findall(text)}
    assert {name for _, name in named} >= {"CLOCK_SKEW_S", "BROKER_CA_IN_SYSTEM_STORE"}, "the pattern finds them"
    defined = assumption_definitions()
    assert sorted(f"{doc}: {name}" for doc, name in named if name not in defined) == []


def test_a_constant_without_its_assumption_stated_is_not_counted() -> None:
    defined = assumption_definitions()
    assert defined["CLOCK_SKEW_S"] == "worker/scheduler/lease.py"
    assert defined["BROKER_CA_IN_SYSTEM_STORE"] == "infra/components/broker.py"
    assert "SETTINGS_EXIT_CODE" not in defined, "a constant that states no assumption"
