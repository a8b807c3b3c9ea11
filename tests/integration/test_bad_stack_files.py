"""A bad stack file stops `scripts/render` and `make render`: exit 2, one stderr line per bad key, no
render written. The files are written to a temporary directory (`--root`), never into the repository.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from infra.components.metrics_publisher import ENV_SAMPLES
from infra.config import ROOT

LAMBDA = "aws:lambda/function:Function"

DEV = (ROOT / "Pulumi.dev.yaml").read_text()


def _pool_line(old: str, new: str) -> str:
    assert old in DEV, old
    return DEV.replace(old, new, 1)


# (id, the stack file's text, what each stderr line names, in order)
CASES: list[tuple[str, str, list[str]]] = [
    (
        "file is a list",
        "- aws:region: us-east-1\n",
        ["Pulumi.bad.yaml: must be a mapping with a `config:` key, not a list"],
    ),
    (
        "config is a list",
        "config:\n  - aws:region\n",
        ["Pulumi.bad.yaml: `config:` must be a mapping of keys to values"],
    ),
    ("syntax error", DEV.replace("  aws:region: us-east-1\n", "  aws:region: [us-east-1\n"), ["Pulumi.bad.yaml line "]),
    (
        "duplicate key",
        DEV + "  celery-cluster:logRetentionDays: 30\n",
        [
            f"Pulumi.bad.yaml line {DEV.count(chr(10)) + 1}: key 'celery-cluster:logRetentionDays' is set twice "
            f"(first on line {DEV.splitlines().index('  celery-cluster:logRetentionDays: 7') + 1})"
        ],
    ),
    ("latency .inf", _pool_line("acceptableLatencySeconds: 60", "acceptableLatencySeconds: .inf"), ["finite"]),
    (
        "cidr host bits",
        DEV + "  celery-cluster:vpcCidr: 10.40.0.1/16\n",
        ["celery-cluster:vpcCidr: '10.40.0.1/16' has"],
    ),
    ("instance type", _pool_line("[t4g.small, t4g.medium]", "[t4g.huge]"), ["'t4g.huge' is not an EC2 instance type"]),
    ("cache node type", DEV.replace("cache.t4g.micro", "cache.t4g.gigantic"), ["celery-cluster:cacheNodeType: "]),
    ("engine version", DEV + "  celery-cluster:brokerEngineVersion: latest\n", ["celery-cluster:brokerEngineVersion"]),
    (
        "AZ is a region",
        DEV.replace("    - us-east-1a\n", "    - us-east-1\n"),
        ["'us-east-1' is not an AZ of us-east-1"],
    ),
    ("foreign key", DEV + "  alerts:emails: [a@b.co]\n", ["alerts:emails: is not read by this project"]),
    ("misspelt namespace", DEV + "  celery-clsuter:brokerHa: true\n", ["did you mean celery-cluster:brokerHa?"]),
    ("markup in a value", _pool_line("queues: [default]", "queues: ['jobs[/]']"), ["'jobs[/]' is not valid"]),
    (
        "pattern in a message",
        DEV.replace("aws:region: us-east-1", "aws:region: us-east"),
        ["'^[a-z]{2}(-[a-z]+)+-[0-9]$'"],
    ),
    (
        "two bad keys",
        DEV + "  celery-cluster:vpcCidr: 10.40.0.1/16\n  celery-cluster:brokerEngineVersion: latest\n",
        ["celery-cluster:brokerEngineVersion", "celery-cluster:vpcCidr"],
    ),
]


def _render(tmp_path: Path, text: str, *command: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "Pulumi.bad.yaml").write_text(text)
    return subprocess.run(
        [*command], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False, env=_narrow_terminal()
    )


def _narrow_terminal() -> dict[str, str]:
    # A narrow terminal width would make rich wrap; the lines must stay whole regardless.
    return {**os.environ, "COLUMNS": "40"}


@pytest.mark.parametrize(("text", "named"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_render_prints_one_line_per_bad_key(tmp_path: Path, text: str, named: list[str]) -> None:
    out = tmp_path / "out"
    done = _render(tmp_path, text, "scripts/render", "--stack", "bad", "--root", str(tmp_path), "--out", str(out))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == len(named), done.stderr
    for line, fragment in zip(lines, named, strict=True):
        assert line.startswith("render: ")
        assert fragment in line
    assert "Traceback" not in done.stderr
    assert not out.exists()


def test_make_render_stops_the_same_way(tmp_path: Path) -> None:
    text = DEV.replace("cache.t4g.micro", "cache.t4g.gigantic")
    done = _render(tmp_path, text, "make", "render", "STACK=bad", f"ARGS=--root {tmp_path} --out {tmp_path / 'out'}")
    assert done.returncode != 0
    ours = [line for line in done.stderr.splitlines() if not line.startswith("make")]
    assert ours == [
        "render: invalid config for stack 'bad': celery-cluster:cacheNodeType: 'cache.t4g.gigantic' is not an "
        "ElastiCache node type (e.g. cache.t4g.micro, cache.m7g.large)"
    ]
    assert not (tmp_path / "out").exists()


def test_a_good_copy_renders(tmp_path: Path) -> None:
    text = DEV.replace("celery-cluster:logRetentionDays: 7", 'celery-cluster:publisherSamplesPerMinute: "12"')
    out = tmp_path / "out"
    done = _render(tmp_path, text, "scripts/render", "--stack", "bad", "--root", str(tmp_path), "--out", str(out))
    assert done.returncode == 0, done.stderr
    resources = json.loads((out / "bad.json").read_text())["resources"]
    (function,) = [r for r in resources if r["type"] == LAMBDA and r["name"] == "publisher-fn"]
    assert function["inputs"]["environment"]["variables"][ENV_SAMPLES] == "12"
