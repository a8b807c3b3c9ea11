"""scripts/bootstrap against moto: what it creates, that it is idempotent, and the OIDC trust."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from infra.cli.account_setup import DEPLOY_SESSION_SECONDS, bootstrap

ENVS = ["dev", "staging", "prod"]


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        yield boto3.Session(region_name="eu-west-1")


def test_creates_state_backend_and_roles(session: boto3.Session) -> None:
    result = bootstrap(session, repo="acme/celery-cluster", environments=ENVS)
    s3 = session.client("s3")
    assert s3.get_bucket_versioning(Bucket=result.state_bucket)["Status"] == "Enabled"
    block = s3.get_public_access_block(Bucket=result.state_bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    assert result.backend_url == f"s3://{result.state_bucket}"
    assert result.secrets_provider.startswith("awskms://alias/celery-cluster-pulumi-secrets?region=eu-west-1")

    iam = session.client("iam")
    prod = iam.get_role(RoleName="celery-cluster-github-deploy-prod")["Role"]
    trust = prod["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    condition = trust["Statement"][0]["Condition"]
    assert condition["StringLike"]["token.actions.githubusercontent.com:sub"] == [
        "repo:acme/celery-cluster:environment:prod"
    ]
    assert condition["StringEquals"]["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    assert set(result.deploy_role_arns) == set(ENVS)
    preview = iam.get_role(RoleName="celery-cluster-github-preview")["Role"]["AssumeRolePolicyDocument"]
    preview = json.loads(preview) if isinstance(preview, str) else preview
    assert preview["Statement"][0]["Condition"]["StringLike"]["token.actions.githubusercontent.com:sub"] == [
        "repo:acme/celery-cluster:pull_request"
    ]
    providers = iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
    assert len(providers) == 1


def test_running_twice_changes_nothing(session: boto3.Session) -> None:
    first = bootstrap(session, repo="acme/celery-cluster", environments=ENVS)
    second = bootstrap(session, repo="acme/celery-cluster", environments=ENVS)
    assert first == second
    assert len(session.client("iam").list_open_id_connect_providers()["OpenIDConnectProviderList"]) == 1
    assert (
        len(
            [
                a
                for a in session.client("kms").list_aliases()["Aliases"]
                if a["AliasName"] == "alias/celery-cluster-pulumi-secrets"
            ]
        )
        == 1
    )


def test_no_inline_policy_allows_a_wildcard_action(session: boto3.Session) -> None:
    bootstrap(session, repo="acme/celery-cluster", environments=["prod"])
    iam = session.client("iam")
    for role in ("celery-cluster-github-deploy-prod", "celery-cluster-github-preview"):
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
            document = json.loads(document) if isinstance(document, str) else document
            for statement in document["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert not any(a == "*" or a.endswith(":*") for a in actions), (role, name, actions)


@pytest.mark.parametrize("repo", ["celery-cluster", "a/b/c", "/x", "org/"])
def test_bad_repo_is_named(session: boto3.Session, repo: str) -> None:
    with pytest.raises(ValueError, match="ORG/REPO"):
        bootstrap(session, repo=repo, environments=ENVS)


def test_deploy_roles_allow_a_session_as_long_as_the_deploy_job(session: boto3.Session) -> None:
    """The workflow asks for DEPLOY_SESSION_SECONDS; a role whose MaxSessionDuration is shorter refuses
    the AssumeRoleWithWebIdentity (https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html).
    A role created by an earlier bootstrap (one hour) is raised on the next run."""
    iam = session.client("iam")
    iam.create_role(RoleName="celery-cluster-github-deploy-dev", AssumeRolePolicyDocument="{}", MaxSessionDuration=3600)
    bootstrap(session, repo="acme/celery-cluster", environments=["dev", "prod"])
    for env in ("dev", "prod"):
        role = iam.get_role(RoleName=f"celery-cluster-github-deploy-{env}")["Role"]
        assert role["MaxSessionDuration"] == DEPLOY_SESSION_SECONDS
    policy = iam.get_role_policy(RoleName="celery-cluster-github-deploy-prod", PolicyName="stack-iam")["PolicyDocument"]
    policy = json.loads(policy) if isinstance(policy, str) else policy
    (statement,) = policy["Statement"]
    assert all("/celery-cluster/" in arn or "aws-service-role" in arn for arn in statement["Resource"])
