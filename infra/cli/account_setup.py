"""One-time account setup for the pipeline: Pulumi state backend and GitHub OIDC roles.

`scripts/bootstrap --github-repo org/repo --region eu-west-1` creates, idempotently:
- an S3 bucket for Pulumi state (versioned, encrypted, public access blocked, TLS-only),
- a KMS key for Pulumi's secrets provider (stack secrets are encrypted with it),
- the GitHub Actions OIDC identity provider,
- a preview role (read-only, assumable from pull requests) and one deploy role per environment
  (assumable only from that GitHub environment, so prod's reviewers gate prod's role).
It prints the values to store as GitHub variables. Running it twice changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from infra.components.iam import IAM_PATH

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_OIDC_URL = f"https://{GITHUB_OIDC_HOST}"
# GitHub's OIDC thumbprint is no longer checked by IAM for this provider, but the API still requires one.
GITHUB_OIDC_THUMBPRINT = "6938fd4d98bab03faadb97b34396831e3780aea1"
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
POWER_USER = "arn:aws:iam::aws:policy/PowerUserAccess"
DEPLOY_SESSION_SECONDS: Final = 4 * 3600
"""The deploy role's session (the workflow asks for it, the role's MaxSessionDuration allows it): one
`pulumi up` may wait IMAGE_CREATE_TIMEOUT_MINUTES for an image build, then for the broker and pools.
IAM allows 1 to 12 hours: https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html"""


@dataclass(frozen=True)
class BootstrapResult:
    state_bucket: str
    backend_url: str
    kms_key_arn: str
    secrets_provider: str
    preview_role_arn: str
    deploy_role_arns: dict[str, str]


def trust_policy(account: str, repo: str, subjects: Sequence[str]) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": f"arn:aws:iam::{account}:oidc-provider/{GITHUB_OIDC_HOST}"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {f"{GITHUB_OIDC_HOST}:aud": "sts.amazonaws.com"},
                    "StringLike": {f"{GITHUB_OIDC_HOST}:sub": [f"repo:{repo}:{s}" for s in subjects]},
                },
            }
        ],
    }


def state_access_policy(bucket: str, key_arn: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": f"arn:aws:s3:::{bucket}",
            },
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": f"arn:aws:s3:::{bucket}/*",
            },
            {"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"], "Resource": key_arn},
        ],
    }


# long function: one IAM policy document, a statement per group of actions, each with why
def iam_for_stack_policy(account: str, path: str = IAM_PATH) -> dict[str, Any]:
    """PowerUserAccess excludes IAM; the stack creates its own roles, so allow IAM on its path only.

    The program puts every role, instance profile and policy under `path` (names are Pulumi's
    auto-names), so an ARN pattern on the path matches them all; the pipeline's own roles live at
    "/" and stay out of reach. ARN format: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html#identifiers-arns

    Besides the creates, what the provider calls to read and update in place: a changed role description
    is iam:UpdateRoleDescription, a changed max session duration iam:UpdateRole, and it lists a role's,
    policy's and instance profile's tags to diff them (terraform-provider-aws internal/service/iam/role.go,
    resourceRoleUpdate and roleTags; policy.go and instance_profile.go alike).
    """
    resources = [f"arn:aws:iam::{account}:{kind}{path}*" for kind in ("role", "policy", "instance-profile")]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "iam:CreateRole",
                    "iam:DeleteRole",
                    "iam:GetRole",
                    "iam:TagRole",
                    "iam:UntagRole",
                    "iam:UpdateAssumeRolePolicy",
                    "iam:UpdateRole",
                    "iam:UpdateRoleDescription",
                    "iam:ListRoleTags",
                    "iam:PutRolePolicy",
                    "iam:GetRolePolicy",
                    "iam:DeleteRolePolicy",
                    "iam:AttachRolePolicy",
                    "iam:DetachRolePolicy",
                    "iam:ListRolePolicies",
                    "iam:ListAttachedRolePolicies",
                    "iam:ListInstanceProfilesForRole",
                    "iam:PassRole",
                    "iam:CreatePolicy",
                    "iam:DeletePolicy",
                    "iam:GetPolicy",
                    "iam:GetPolicyVersion",
                    "iam:CreatePolicyVersion",
                    "iam:DeletePolicyVersion",
                    "iam:ListPolicyVersions",
                    "iam:TagPolicy",
                    "iam:UntagPolicy",
                    "iam:ListPolicyTags",
                    "iam:CreateInstanceProfile",
                    "iam:DeleteInstanceProfile",
                    "iam:GetInstanceProfile",
                    "iam:AddRoleToInstanceProfile",
                    "iam:RemoveRoleFromInstanceProfile",
                    "iam:TagInstanceProfile",
                    "iam:UntagInstanceProfile",
                    "iam:ListInstanceProfileTags",
                    "iam:CreateServiceLinkedRole",
                ],
                "Resource": [*resources, f"arn:aws:iam::{account}:role/aws-service-role/*"],
            }
        ],
    }


def tls_only_bucket_policy(bucket: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "TlsOnly",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def bootstrap(
    session: Any, *, repo: str, environments: Sequence[str], prefix: str = "celery-cluster"
) -> BootstrapResult:
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ValueError(f"--github-repo must look like ORG/REPO, got {repo!r}")
    region = session.region_name
    account = session.client("sts").get_caller_identity()["Account"]
    iam = session.client("iam")

    bucket = _ensure_state_bucket(session.client("s3"), f"{prefix}-pulumi-state-{account}-{region}", region)
    alias = f"alias/{prefix}-pulumi-secrets"
    key_arn = _ensure_secrets_key(session.client("kms"), alias)
    _ensure_github_oidc_provider(iam)

    state = {"pulumi-state": state_access_policy(bucket, key_arn)}
    preview = _ensure_role(
        iam, f"{prefix}-github-preview", trust_policy(account, repo, ["pull_request"]), READ_ONLY, state
    )
    deploys = {
        env: _ensure_role(
            iam,
            f"{prefix}-github-deploy-{env}",
            trust_policy(account, repo, [f"environment:{env}"]),
            POWER_USER,
            {**state, "stack-iam": iam_for_stack_policy(account)},
        )
        for env in environments
    }
    return BootstrapResult(
        state_bucket=bucket,
        backend_url=f"s3://{bucket}",
        kms_key_arn=key_arn,
        secrets_provider=f"awskms://{alias}?region={region}",
        preview_role_arn=preview,
        deploy_role_arns=deploys,
    )


def _ensure_state_bucket(s3: Any, bucket: str, region: str) -> str:
    # Every setting is put again on each run, so a bucket someone loosened by hand is tightened back.
    if bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        create: dict[str, Any] = {"Bucket": bucket}
        # Every region but us-east-1 requires a LocationConstraint naming it, and us-east-1 refuses one naming
        # itself: https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html, aws/aws-sdk-js#526
        if region != "us-east-1":
            create["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**create)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}, "BucketKeyEnabled": True}]
        },
    )
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(tls_only_bucket_policy(bucket)))
    return bucket


def _ensure_secrets_key(kms: Any, alias: str) -> str:
    # The alias, not a key id, is what the stacks' secrets provider names: found by it, never a second key.
    if alias in {a["AliasName"] for a in kms.list_aliases()["Aliases"]}:
        arn: str = kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"]
        return arn
    arn = kms.create_key(Description="Pulumi secrets provider for celery-cluster stacks")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName=alias, TargetKeyId=arn)
    kms.enable_key_rotation(KeyId=arn)
    return arn


def _ensure_github_oidc_provider(iam: Any) -> None:
    # An account holds one provider per URL (a second create fails), and another tool may have made it.
    providers = [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]]
    if not any(arn.endswith(f"oidc-provider/{GITHUB_OIDC_HOST}") for arn in providers):
        iam.create_open_id_connect_provider(
            Url=GITHUB_OIDC_URL, ClientIDList=["sts.amazonaws.com"], ThumbprintList=[GITHUB_OIDC_THUMBPRINT]
        )


def _ensure_role(iam: Any, name: str, trust: dict[str, Any], managed: str, inline: dict[str, dict[str, Any]]) -> str:
    document = json.dumps(trust)
    try:
        arn: str = iam.get_role(RoleName=name)["Role"]["Arn"]
        # A rerun with other environments or another repository takes effect on the role that exists.
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=document)
    except iam.exceptions.NoSuchEntityException:
        arn = iam.create_role(
            RoleName=name, AssumeRolePolicyDocument=document, MaxSessionDuration=DEPLOY_SESSION_SECONDS
        )["Role"]["Arn"]
    iam.update_role(RoleName=name, MaxSessionDuration=DEPLOY_SESSION_SECONDS)
    iam.attach_role_policy(RoleName=name, PolicyArn=managed)
    for policy_name, policy in inline.items():
        iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(policy))
    return arn
