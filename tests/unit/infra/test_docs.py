"""The README stays in step with the code: its config table is the generated one."""

from __future__ import annotations

import re

from infra import outputs
from infra.cli.config_table import BEGIN, END, table
from infra.config import PROJECT, ROOT, declared_keys
from tests.support.rendered import rendered

DOC = ROOT / "README.md"


def test_config_table_matches_pulumi_yaml_and_pool_config() -> None:
    text = DOC.read_text()
    block = BEGIN + text.split(BEGIN, 1)[1].split(END, 1)[0] + END
    assert block == table(), "run: .venv/bin/python -m infra.cli.config_table --write README.md"


def test_every_declared_key_is_documented() -> None:
    text = DOC.read_text()
    for key in declared_keys():
        assert f"| `{key}` |" in text


def test_rendered_counts_in_the_readme_are_the_renders() -> None:
    text = DOC.read_text()
    stated = re.search(r"Rendered counts [^:]*: dev (\d+) resources, staging (\d+),\s+prod (\d+)\.", text)
    assert stated, "README lost its 'Rendered counts' sentence"
    measured = [
        sum(1 for r in rendered(stack).document["resources"] if not r["type"].startswith(f"{PROJECT}:"))
        for stack in ("dev", "staging", "prod")
    ]
    assert [int(n) for n in stated.groups()] == measured, (
        f"README: write dev {measured[0]}, staging {measured[1]}, prod {measured[2]}"
    )


def test_outputs_in_the_readme_are_the_stack_outputs() -> None:
    paragraph = DOC.read_text().split("Outputs (`infra/outputs.py`):", 1)[1].split("\n\n", 1)[0]
    assert sorted(re.findall(r"`(\w+)`", paragraph)) == sorted(outputs.ALL)
    assert sorted(rendered("prod").document["outputs"]) == sorted(outputs.ALL)


def test_the_step_policies_in_docs_infra_are_the_deployed_ones() -> None:
    text = " ".join((ROOT / "docs" / "infra.md").read_text().split())
    scaling = rendered("prod").config.pools["default"].scaling("default")
    fast, scale_in, latency = scaling.step("fast-out"), scaling.step("scale-in"), scaling.step("latency")
    assert fast is not None
    assert scale_in is not None
    assert latency is not None
    adds = " / ".join(f"+{step.scaling_adjustment}" for step in fast.steps)
    assert f"adds {adds} % (at least {fast.min_adjustment_magnitude} instances)" in text
    removes = " / ".join(str(-step.scaling_adjustment) for step in reversed(scale_in.steps))
    assert f"under {scale_in.threshold * 100:.0f} % for a minute removes {removes} %" in text
    net = " / ".join(str(step.scaling_adjustment) for step in latency.steps)
    assert f"adds {net} %" in text
