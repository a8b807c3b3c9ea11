"""Producer access in the stack config: who may reach the broker, and the one routing table.

- `brokerClientSecurityGroupIds`: security groups of producer applications (this VPC or a peered
  one), admitted to the broker port only;
- `brokerClientCidrs`: address ranges of producers reached through peering, Transit Gateway or VPN,
  admitted to the broker port only. Private ranges of any size; a public range at most a /16, and
  never 0.0.0.0/0 (the security baseline);
- `taskRoutes`: task name or glob -> queue, read by every pool's workers and by producers (through
  the producer secret); each queue must be one a pool consumes.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping

from celery_cluster_client.routing import RouteError, parse_routes
from infra.config.errors import KeyRuleError
from policy.rules import WIDEST_PUBLIC_INGRESS_PREFIX

SECURITY_GROUP_ID = re.compile(r"^sg-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
# The widest public range a producer CIDR may be (the policy pack's own bound): wider is most likely a
# typo (a /8 of someone else's addresses) and admits far more than one organisation's producers.
WIDEST_PUBLIC_PREFIX = WIDEST_PUBLIC_INGRESS_PREFIX
TASK_ROUTES_KEY = "taskRoutes"
# A security group holds at most 60 inbound rules ("Inbound or outbound rules per security group",
# https://docs.aws.amazon.com/vpc/latest/userguide/amazon-vpc-limits.html#vpc-limits-security-groups). The
# broker's holds one per producer group and per producer range, and up to 3 of the stack's own (workers,
# publisher, and the publisher to RabbitMQ's management API).
SECURITY_GROUP_RULES_MAX = 60
OWN_BROKER_RULES = 3


def check_security_group_ids(value: tuple[str, ...]) -> tuple[str, ...]:
    for item in value:
        if not SECURITY_GROUP_ID.match(item):
            raise ValueError(f"{item!r} is not a security group id (sg- then 8 or 17 hex digits)")
    if len(set(value)) != len(value):
        raise ValueError("lists a security group twice")
    return value


def check_cidrs(value: tuple[str, ...]) -> tuple[str, ...]:
    for item in value:
        try:
            network = ipaddress.IPv4Network(item, strict=True)
        except ipaddress.AddressValueError:
            raise ValueError(f"{item!r} is not an IPv4 CIDR like 10.50.0.0/16") from None
        except ValueError as exc:  # host bits set, or a bad prefix
            raise ValueError(f"{item!r}: {exc} (give the network address, e.g. {_network_of(item)})") from None
        if network.prefixlen == 0:
            raise ValueError(f"{item!r} admits the whole internet; list your producers' ranges")
        if not network.is_private and network.prefixlen < WIDEST_PUBLIC_PREFIX:
            raise ValueError(
                f"{item!r} is a public range wider than /{WIDEST_PUBLIC_PREFIX}; list your producers' ranges"
            )
    if len(set(value)) != len(value):
        raise ValueError("lists a CIDR twice")
    return value


def _network_of(item: str) -> str:
    try:
        return str(ipaddress.IPv4Network(item, strict=False))
    except ValueError:
        return "10.50.0.0/16"


def check_client_count(groups: tuple[str, ...], cidrs: tuple[str, ...]) -> None:
    """Producer groups and ranges together fit the broker security group's inbound rules."""
    room = SECURITY_GROUP_RULES_MAX - OWN_BROKER_RULES
    if len(groups) + len(cidrs) > room:
        raise KeyRuleError(
            "brokerClientCidrs" if cidrs else "brokerClientSecurityGroupIds",
            f"{len(groups)} producer security groups and {len(cidrs)} ranges need {len(groups) + len(cidrs)} "
            f"inbound rules; the broker's security group takes {SECURITY_GROUP_RULES_MAX}, {OWN_BROKER_RULES} of "
            f"them the stack's own, so list at most {room} together (or put producers in a shared security group)",
        )


def check_routes(value: Mapping[str, str]) -> Mapping[str, str]:
    try:
        return parse_routes(value)
    except RouteError as exc:
        raise ValueError(str(exc)) from None


def check_routes_reach_pools(routes: Mapping[str, str], consumed: Iterable[str]) -> None:
    """Every route names a queue some pool consumes, or its tasks would wait forever."""
    queues = sorted(set(consumed))
    for pattern, queue in routes.items():
        if queue not in queues:
            raise KeyRuleError(
                f"{TASK_ROUTES_KEY}.{pattern}",
                f"routes to queue {queue!r}, which no pool consumes (pools consume: {', '.join(queues)})",
            )
