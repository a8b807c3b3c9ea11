"""The stack's artefact bucket: `make build`'s wheelhouses and image files, under content-addressed keys.

Image builds (bake) and instances (boot) read them from here; nothing else does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pulumi
import pulumi_aws as aws

from infra.components import iam

# "bucket_prefix ... Must be lowercase and less than or equal to 37 characters in length."
# https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/s3_bucket#bucket_prefix-1
BUCKET_PREFIX_MAX: Final = 37


def bucket_prefix(stack: str) -> str:
    """`celery-cluster-<stack>-`: 32 characters for the longest stack name the config admits (16)."""
    prefix = f"celery-cluster-{stack}-"
    if len(prefix) > BUCKET_PREFIX_MAX:
        raise ValueError(
            f"stack name {stack!r}: the artefact bucket prefix {prefix!r} is over {BUCKET_PREFIX_MAX} characters"
        )
    return prefix


def read_artefacts_policy(bucket_arn: str) -> iam.Document:
    """Instances (boot mode) and image builds read the stack's build artefacts, nothing else."""
    return iam.document(
        {
            "Sid": "ReadBuildArtefacts",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": f"{bucket_arn}/builds/*",
        }
    )


def create_bucket(name: str, stack: str, opts: pulumi.ResourceOptions) -> aws.s3.Bucket:
    bucket = aws.s3.Bucket(
        f"{name}-artefacts",
        aws.s3.BucketArgs(
            bucket_prefix=bucket_prefix(stack),
            force_destroy=True,  # only build outputs live here; `make build` recreates them
            tags={"celery-cluster:stack": stack},
        ),
        opts=opts,
    )
    aws.s3.BucketPublicAccessBlock(
        f"{name}-artefacts",
        aws.s3.BucketPublicAccessBlockArgs(
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
        ),
        opts=opts,
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-artefacts",
        aws.s3.BucketServerSideEncryptionConfigurationInitArgs(
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="AES256"
                    )
                )
            ],
        ),
        opts=opts,
    )
    return bucket


def upload(
    name: str, bucket: aws.s3.Bucket, key: str, path: Path, opts: pulumi.ResourceOptions
) -> aws.s3.BucketObjectv2:
    return aws.s3.BucketObjectv2(
        name,
        aws.s3.BucketObjectv2Args(
            bucket=bucket.id,
            key=key,
            source=pulumi.FileAsset(str(path)),
            content_type="application/gzip",
            server_side_encryption="AES256",
        ),
        opts=opts,
    )
