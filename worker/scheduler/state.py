"""What the scheduler keeps in its lease store, and the contract both stores keep (`LeaseStore`).

Each entry has one `RunState`: the last slot it covered and how. A run is claimed in the store
before it is published (`advance`, atomic with the lease check), and confirmed after (`record`).
A claim that was never confirmed (the holder was paused or killed between the two) is sent again
by whoever holds the lease next, with the same task id; the workers run only one copy
(`worker.runtime.periodic_fence`). A stale holder cannot claim: the claim checks the lease.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal, Protocol

# What `advance` found: "ok" (claimed), "lost" (the lease is not ours), "behind" (the store already
# has this slot or a later one: our view of the entry is stale), "early" (not due on the store's clock).
Advance = Literal["ok", "lost", "behind", "early"]


class LeaseError(RuntimeError):
    """The lease store cannot be reached or is misconfigured; the message names the store."""


@dataclass(frozen=True)
class Grant:
    """A lease taken or renewed."""

    # True when the lease was not ours just before (taken, not renewed): the state must be read
    # again, and a store that came back empty (a restart without persistence) shows here.
    fresh: bool
    # The store's clock when it granted the lease (epoch seconds): Redis TIME; for DynamoDB, which
    # has none, the scheduler's own clock (lease.CLOCK_SKEW_S states the bound).
    store_time: float


@dataclass(frozen=True)
class RunState:
    """What an entry last did: the slot it covered, and when it was sent (the store's clock)."""

    slot: float
    sent_at: float | None  # None: skipped (catch_up "skip"), or claimed and not confirmed yet
    # Claimed for a send that was not confirmed: the lease holder sends it (again, with the same id).
    claimed: bool = False
    # A catch-up run: the entry's last slot before the slots this one run stands for.
    since: float | None = None

    def dumps(self) -> str:
        return json.dumps({"slot": self.slot, "sent_at": self.sent_at, "claimed": self.claimed, "since": self.since})

    @classmethod
    def loads(cls, text: str | bytes) -> RunState:
        data = json.loads(text)
        sent_at, since = data.get("sent_at"), data.get("since")
        return cls(
            float(data["slot"]),
            None if sent_at is None else float(sent_at),
            bool(data.get("claimed", False)),
            None if since is None else float(since),
        )


class LeaseStore(Protocol):
    def acquire(self, holder: str, seconds: float) -> Grant | None:
        """Take the lease, or renew it if `holder` has it; None when someone else holds it."""
        ...

    def release(self, holder: str) -> None:
        """Give the lease up at once (a clean stop), if `holder` has it."""
        ...

    def holder(self) -> str | None: ...

    def load(self) -> dict[str, RunState]:
        """Every entry's last run."""
        ...

    def advance(self, holder: str, entry: str, state: RunState) -> Advance:
        """Move an entry forward to `state` (a later slot than the store's), only while `holder` holds
        the lease and the slot is due: one atomic step, so a holder that lost the lease claims nothing."""
        ...

    def record(self, holder: str, entry: str, state: RunState) -> bool:
        """Store an entry's run (a confirmed send of the slot it claimed), only while `holder` holds
        the lease; False when it does not."""
        ...

    def close(self) -> None: ...
