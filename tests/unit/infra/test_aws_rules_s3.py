"""AWS rules on the stack's S3 buckets, each citing its source: bucket prefixes fit in 37 characters, for
every stack name the config admits."""

from __future__ import annotations

import pytest

from infra.components.artefact_bucket import BUCKET_PREFIX_MAX, bucket_prefix
from infra.config import merged_raw, parse_config, read_stack_file
from tests.support.rendered import Rendered

BUCKET = "aws:s3/bucket:Bucket"


def test_bucket_prefixes_fit_in_37_characters(stack: Rendered) -> None:
    """bucket_prefix: "Must be lowercase and less than or equal to 37 characters in length."
    https://registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/s3_bucket#bucket_prefix-1"""
    for bucket in stack.inputs(BUCKET):
        prefix = bucket.get("bucketPrefix")
        if prefix is not None:
            assert len(prefix) <= BUCKET_PREFIX_MAX, prefix
            assert prefix == prefix.lower(), prefix


def test_the_longest_stack_name_the_config_admits_fits_the_bucket_prefix() -> None:
    """The same rule for every stack name the config allows, not only today's three."""
    longest = "a" + "b" * 15
    values = read_stack_file("dev")
    assert parse_config(longest, merged_raw(values)).stack == longest
    assert len(bucket_prefix(longest)) <= BUCKET_PREFIX_MAX
    with pytest.raises(ValueError, match="stack"):
        parse_config(longest + "c", merged_raw(values))
