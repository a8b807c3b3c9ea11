"""A small IMDSv2 client: the instance metadata the drain agent polls.

IMDSv2 only (the stack requires it, docs/architecture.md security baseline): every read carries a session
token obtained with `PUT /latest/api/token`. Paths and semantics:
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html
https://docs.aws.amazon.com/autoscaling/ec2/userguide/retrieving-target-lifecycle-state-through-imds.html
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

TOKEN_PATH: Final = "/latest/api/token"  # noqa: S105 - a path, not a secret
TOKEN_TTL_HEADER: Final = "X-aws-ec2-metadata-token-ttl-seconds"  # noqa: S105
TOKEN_HEADER: Final = "X-aws-ec2-metadata-token"  # noqa: S105
LIFECYCLE_STATE_PATH: Final = "/latest/meta-data/autoscaling/target-lifecycle-state"
SPOT_ACTION_PATH: Final = "/latest/meta-data/spot/instance-action"
INSTANCE_ID_PATH: Final = "/latest/meta-data/instance-id"
REGION_PATH: Final = "/latest/meta-data/placement/region"
# Readable only when the launch template enables instance metadata tags.
ASG_TAG_PATH: Final = "/latest/meta-data/tags/instance/aws:autoscaling:groupName"

# The token is renewed this long before it expires, so a read never races its expiry.
_RENEW_MARGIN_S: Final = 60.0


class MetadataError(RuntimeError):
    """IMDS answered with something other than the value or a 404; the message names the path."""


class SpotAction(BaseModel):
    """The body of `spot/instance-action`: what EC2 will do to this Spot instance, and when."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    action: Literal["terminate", "stop", "hibernate"]
    time: datetime

    def seconds_left(self, now: datetime | None = None) -> float:
        return (self.time - (now or datetime.now(UTC))).total_seconds()


@dataclass
class Imds:
    endpoint: str = "http://169.254.169.254"
    token_ttl: int = 21600
    timeout: float = 2.0
    _client: httpx.Client | None = None
    _token: str | None = None
    _token_expires: float = 0.0

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            # No proxy: IMDS is link-local, and a proxy from the environment would swallow it.
            self._client = httpx.Client(base_url=self.endpoint, timeout=self.timeout, trust_env=False)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def token(self, *, renew: bool = False) -> str:
        if renew or self._token is None or time.monotonic() >= self._token_expires:
            response = self.client.put(TOKEN_PATH, headers={TOKEN_TTL_HEADER: str(self.token_ttl)})
            if response.status_code != httpx.codes.OK:
                raise MetadataError(f"PUT {TOKEN_PATH}: HTTP {response.status_code}")
            self._token = response.text.strip()
            self._token_expires = time.monotonic() + self.token_ttl - min(_RENEW_MARGIN_S, self.token_ttl / 2)
        return self._token

    def get(self, path: str) -> str | None:
        """The item's text, or None when IMDS says 404 (the item does not exist right now)."""
        response = self.client.get(path, headers={TOKEN_HEADER: self.token()})
        if response.status_code == httpx.codes.UNAUTHORIZED:
            # The token expired or IMDS restarted: take a new one and try once more.
            response = self.client.get(path, headers={TOKEN_HEADER: self.token(renew=True)})
        if response.status_code == httpx.codes.NOT_FOUND:
            return None
        if response.status_code != httpx.codes.OK:
            raise MetadataError(f"GET {path}: HTTP {response.status_code}")
        return response.text.strip()

    def target_lifecycle_state(self) -> str | None:
        """`InService`, `Terminated`, ... or None outside an Auto Scaling group."""
        return self.get(LIFECYCLE_STATE_PATH)

    def spot_action(self) -> SpotAction | None:
        """The Spot interruption notice, or None while there is none (IMDS returns 404)."""
        body = self.get(SPOT_ACTION_PATH)
        if body is None:
            return None
        try:
            return SpotAction.model_validate_json(body)
        except ValidationError as exc:
            raise MetadataError(
                f"GET {SPOT_ACTION_PATH}: unexpected body {body[:200]!r} ({exc.error_count()} errors)"
            ) from None

    def instance_id(self) -> str:
        return self._required(INSTANCE_ID_PATH)

    def region(self) -> str:
        return self._required(REGION_PATH)

    def asg_name(self) -> str | None:
        return self.get(ASG_TAG_PATH)

    def _required(self, path: str) -> str:
        value = self.get(path)
        if not value:
            raise MetadataError(f"GET {path}: not found")
        return value
