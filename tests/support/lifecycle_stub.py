"""A boto3 Auto Scaling client under botocore's Stubber, for the drain agent's lifecycle calls.

The agent heartbeats as long as the worker takes to stop, so the number of calls is not known in
advance. Each call therefore queues its own stubbed response just before the Stubber checks it,
with the parameters the test expects: the Stubber still refuses any other parameters, the client
still validates them against the Auto Scaling service model, and every call is recorded. (So
`assert_no_pending_responses()` proves nothing here; tests assert on `calls` instead.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.stub import Stubber

HEARTBEAT = "RecordLifecycleActionHeartbeat"
COMPLETE = "CompleteLifecycleAction"


@dataclass(frozen=True)
class Call:
    operation: str
    params: dict[str, Any]
    at: float  # time.monotonic()
    worker_running: bool


@dataclass
class LifecycleStub:
    hook_name: str
    asg_name: str
    instance_id: str
    worker_running: Callable[[], bool]
    region: str = "eu-west-1"
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client: Any = boto3.client(
            "autoscaling",
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.stubber = Stubber(self.client)
        # provide-client-params fires before the Stubber's own before-parameter-build check.
        self.client.meta.events.register(f"provide-client-params.auto-scaling.{HEARTBEAT}", self._expect_heartbeat)
        self.client.meta.events.register(f"provide-client-params.auto-scaling.{COMPLETE}", self._expect_complete)
        self.stubber.activate()

    @property
    def ids(self) -> dict[str, str]:
        return {
            "LifecycleHookName": self.hook_name,
            "AutoScalingGroupName": self.asg_name,
            "InstanceId": self.instance_id,
        }

    def _record(self, operation: str, params: dict[str, Any]) -> None:
        self.calls.append(Call(operation, dict(params), time.monotonic(), self.worker_running()))

    def _expect_heartbeat(self, params: dict[str, Any], **_: Any) -> None:
        self._record(HEARTBEAT, params)
        self.stubber.add_response("record_lifecycle_action_heartbeat", {}, self.ids)

    def _expect_complete(self, params: dict[str, Any], **_: Any) -> None:
        self._record(COMPLETE, params)
        self.stubber.add_response("complete_lifecycle_action", {}, {**self.ids, "LifecycleActionResult": "CONTINUE"})

    def of(self, operation: str) -> list[Call]:
        return [call for call in self.calls if call.operation == operation]


class RefusingStub(LifecycleStub):
    """Auto Scaling's answer once the lifecycle action is gone (a Spot interruption outside a scale-in, or a
    hook that timed out): every heartbeat and completion is refused with a ValidationError."""

    def _refuse(self, operation: str, params: dict[str, Any]) -> None:
        self._record(operation, params)
        self.stubber.add_client_error(
            "record_lifecycle_action_heartbeat" if operation == HEARTBEAT else "complete_lifecycle_action",
            service_error_code="ValidationError",
            service_message=f"No active Lifecycle Action found with instance ID {self.instance_id}",
            http_status_code=400,
        )

    def _expect_heartbeat(self, params: dict[str, Any], **_: Any) -> None:
        self._refuse(HEARTBEAT, params)

    def _expect_complete(self, params: dict[str, Any], **_: Any) -> None:
        self._refuse(COMPLETE, params)
