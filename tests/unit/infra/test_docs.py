"""The README stays in step with the code: its config table is the generated one."""

from __future__ import annotations

from infra.cli.config_table import BEGIN, END, table
from infra.config import ROOT, declared_keys

DOC = ROOT / "README.md"


def test_config_table_matches_pulumi_yaml_and_pool_config() -> None:
    text = DOC.read_text()
    block = BEGIN + text.split(BEGIN, 1)[1].split(END, 1)[0] + END
    assert block == table(), "run: .venv/bin/python -m infra.cli.config_table --write README.md"


def test_every_declared_key_is_documented() -> None:
    text = DOC.read_text()
    for key in declared_keys():
        assert f"| `{key}` |" in text
