"""fetch-env (the worker unit's ExecStartPre): SSM parameters and a secret become an EnvironmentFile."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from tests.support.units import systemd_unquote
from worker.instance import fetchenv

REGION = "eu-west-1"
BROKER = 'rediss://:pa"s$w\\rd`x@broker.example.internal:6379/0'


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "WORKER_SSM_PATH": "/celery-cluster/dev/default/",
        "WORKER_SECRET_ID": "celery-cluster/dev/broker",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        ssm = boto3.client("ssm", region_name=REGION)
        ssm.put_parameter(Name="/celery-cluster/dev/default/CELERY_SOFT_SHUTDOWN_TIMEOUT", Value="90", Type="String")
        ssm.put_parameter(
            Name="/celery-cluster/dev/default/routes/CELERY_TASK_ROUTES",
            Value=json.dumps({"reports.*": "reports"}),
            Type="String",
        )
        ssm.put_parameter(Name="/celery-cluster/dev/default/CELERY_BROKER_URL", Value="redis://stale", Type="String")
        ssm.put_parameter(Name="/celery-cluster/dev/other/CELERY_LOG_LEVEL", Value="DEBUG", Type="String")
        boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="celery-cluster/dev/broker", SecretString=json.dumps({"CELERY_BROKER_URL": BROKER})
        )
        yield


@pytest.mark.usefixtures("aws")
def test_parameters_and_secret_become_an_environment_file(tmp_path: Path) -> None:
    out = tmp_path / "run" / "worker.env"
    assert fetchenv.main([str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    variables = dict(systemd_unquote(line) for line in out.read_text().splitlines())
    assert variables == {
        "CELERY_BROKER_URL": BROKER,  # the secret wins over the stale parameter
        "CELERY_SOFT_SHUTDOWN_TIMEOUT": "90",
        "CELERY_TASK_ROUTES": '{"reports.*": "reports"}',
    }
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "temporary file left behind"


@pytest.mark.usefixtures("aws")
def test_secret_that_is_not_a_json_object_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId="celery-cluster/dev/broker", SecretString="rediss://plain"
    )
    assert fetchenv.main([str(tmp_path / "worker.env")]) == 1
    assert "secret celery-cluster/dev/broker: SecretString must be a JSON object" in capsys.readouterr().err
    assert not (tmp_path / "worker.env").exists()


@pytest.mark.usefixtures("aws")
def test_missing_secret_is_reported_with_the_aws_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    boto3.client("secretsmanager", region_name=REGION).delete_secret(
        SecretId="celery-cluster/dev/broker", ForceDeleteWithoutRecovery=True
    )
    assert fetchenv.main([str(tmp_path / "worker.env")]) == 1
    assert "GetSecretValue: ResourceNotFoundException" in capsys.readouterr().err


def test_bad_variable_names_and_values_are_refused() -> None:
    with pytest.raises(fetchenv.FetchError, match="CELERY_X: value contains a line break"):
        fetchenv.quote("CELERY_X", "a\nb")
    assert fetchenv.quote("CELERY_X", "plain:1/2") == "CELERY_X=plain:1/2"
    assert fetchenv.quote("CELERY_X", "a b") == 'CELERY_X="a b"'


def test_bad_ssm_path_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_SSM_PATH", "relative/path")
    with pytest.raises(fetchenv.FetchError, match=r"^WORKER_SSM_PATH: String should match pattern"):
        fetchenv.load_settings()
