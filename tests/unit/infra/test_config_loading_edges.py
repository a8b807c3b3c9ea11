"""Config loading at its edges: string keys left as written, the AWS and Pulumi namespaces let through,
encrypted secrets refused, a stack file read from the root asked for, and periodic capacity applied only
with the scheduler on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from infra.config import ConfigError, load_stack_config, read_stack_file
from infra.config.loading import ROOT, parse_engine_config, to_pulumi_config


def test_a_string_key_that_reads_as_json_stays_a_string() -> None:
    # `pulumi config set brokerEngineVersion 8.0` stores the text 8.0; json.loads would make it a float.
    engine = to_pulumi_config({**read_stack_file("dev"), "brokerEngineVersion": "8.0"})
    assert engine["celery-cluster:brokerEngineVersion"] == "8.0"
    assert parse_engine_config("dev", engine).broker_engine_version == "8.0"


def test_aws_and_pulumi_keys_are_let_through_and_a_bare_namespace_is_not() -> None:
    engine = to_pulumi_config(read_stack_file("dev"))
    expected = parse_engine_config("dev", engine)
    assert parse_engine_config("dev", {**engine, "aws:profile": "ops", "pulumi:tags": "{}"}) == expected
    with pytest.raises(ConfigError, match=r"invalid config for stack 'dev': aws: is not read by this project"):
        parse_engine_config("dev", {**engine, "aws": "x"})


def test_an_encrypted_secret_in_a_stack_file_is_refused(tmp_path: Path) -> None:
    text = (ROOT / "Pulumi.dev.yaml").read_text()
    (tmp_path / "Pulumi.qa.yaml").write_text(text + "  celery-cluster:token:\n    secure: AAABAKx0\n")
    with pytest.raises(ConfigError, match=r"Pulumi\.qa\.yaml: celery-cluster:token is an encrypted secret"):
        read_stack_file("qa", tmp_path)


def test_a_stack_file_is_read_from_the_root_given(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Pulumi.dev.yaml", tmp_path / "Pulumi.qa.yaml")
    assert load_stack_config("qa", tmp_path).stack == "qa"


@pytest.mark.parametrize("enabled", [True, False])
def test_periodic_capacity_only_with_the_scheduler(enabled: bool) -> None:
    # prod's periodic entries raise its default pool ahead of their runs; prod's file sets no schedule itself.
    engine = to_pulumi_config({**read_stack_file("prod"), "schedulerEnabled": enabled})
    schedules = parse_engine_config("prod", engine).pools["default"].schedules
    assert bool(schedules) is enabled
