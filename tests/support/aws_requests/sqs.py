"""SQS: queues (the smoke results queue)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tests.support.aws_requests.members import Builder, Call, name_of

# The provider's queue arguments and the CreateQueue attribute each becomes (values are strings in the API:
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html).
ATTRIBUTES = {
    "kmsMasterKeyId": "KmsMasterKeyId",
    "kmsDataKeyReusePeriodSeconds": "KmsDataKeyReusePeriodSeconds",
    "messageRetentionSeconds": "MessageRetentionPeriod",
    "visibilityTimeoutSeconds": "VisibilityTimeout",
    "receiveWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
    "delaySeconds": "DelaySeconds",
    "maxMessageSize": "MaximumMessageSize",
}


def _queue(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    attributes = {attribute: str(i[key]) for key, attribute in ATTRIBUTES.items() if i.get(key) is not None}
    yield ("sqs", "CreateQueue", {"QueueName": name_of(i, name), "Attributes": attributes or None})


BUILDERS: dict[str, Builder] = {"aws:sqs/queue:Queue": _queue}
