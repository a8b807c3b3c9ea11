"""How a rendered resource's inputs become request members, shared by every service's builders.

Most members copy an input of the same name, camelCase in the render and PascalCase (or camelCase,
for Image Builder and CloudWatch Logs) in the API: `optional` and `required` copy those by the
member's name. The rest are converted here: tags, dimensions, the provider's tri-state booleans,
nested shapes whose names agree but for case, and the metric and volume shapes two services share.

Names the provider generates (Pulumi auto-names: the resource name plus "-" and 7 hex digits) and
values only known after deployment are filled with representative stand-ins, named below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

AUTONAME_SUFFIX = "-1a2b3c4"  # Pulumi auto-naming appends "-" and 7 random hex digits
SECRET_STAND_IN = "Stand-in-secret-value-0123456789abcdef"  # a password or auth token of a valid shape

Call = tuple[str, str, dict[str, Any]]
"""(botocore service, operation, parameters) of one request."""
Builder = Callable[[str, Mapping[str, Any]], Iterator[Call]]
"""The requests the provider sends to create one resource, from its name and rendered inputs."""


def _input_key(member: str) -> str:
    return member[:1].lower() + member[1:]


def optional(inputs: Mapping[str, Any], *members: str) -> dict[str, Any]:
    """`members` copied from the inputs of the same name (`EngineVersion` <- `engineVersion`); an input
    the render does not hold is None, which `drop_none` leaves out of the request."""
    return {member: inputs.get(_input_key(member)) for member in members}


def required(inputs: Mapping[str, Any], *members: str) -> dict[str, Any]:
    """`members` copied as `optional` does, from inputs the provider requires: a render without one
    is a KeyError, not a request."""
    return {member: inputs[_input_key(member)] for member in members}


def drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_none(v) for v in value]
    return value


def as_bool(value: Any) -> bool | None:
    """The provider's tri-state strings ("true"/"false") and booleans, as the API's boolean."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    return str(value).lower() == "true"


def plain(value: Any) -> Any:
    return SECRET_STAND_IN if value == "[secret]" else value


def name_of(inputs: Mapping[str, Any], name: str, key: str = "name") -> str:
    given = inputs.get(key)
    return str(given) if given else f"{name}{AUTONAME_SUFFIX}"


def tags(given: Mapping[str, str] | None) -> list[dict[str, str]] | None:
    return [{"Key": k, "Value": v} for k, v in given.items()] if given else None


def dimensions(dims: Any) -> list[dict[str, str]] | None:
    if not dims:
        return None
    if isinstance(dims, dict):
        return [{"Name": k, "Value": v} for k, v in dims.items()]
    return [{"Name": d["name"], "Value": d["value"]} for d in dims]


def pascal(value: Any) -> Any:
    """camelCase keys -> PascalCase, recursively (for nested shapes whose names agree but for case)."""
    if isinstance(value, dict):
        return {k[:1].upper() + k[1:]: pascal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [pascal(v) for v in value]
    return value


def metric(given: Mapping[str, Any]) -> dict[str, Any]:
    """CloudWatch's Metric shape, in alarms' metric queries and target tracking's customized metrics."""
    return {
        **optional(given, "Namespace"),
        **required(given, "MetricName"),
        "Dimensions": dimensions(given.get("dimensions")),
    }


def metric_query(query: Mapping[str, Any], metric_stat: dict[str, Any] | None) -> dict[str, Any]:
    """CloudWatch's MetricDataQuery shape (Auto Scaling's TargetTrackingMetricDataQuery is the same)."""
    return {
        **required(query, "Id"),
        **optional(query, "Expression", "Label", "ReturnData", "Period"),
        "MetricStat": metric_stat,
    }


def ebs_volume(ebs: Mapping[str, Any]) -> dict[str, Any]:
    """An EBS block device, in a launch template's data and (camelCase) an Image Builder recipe."""
    return {
        "Encrypted": as_bool(ebs.get("encrypted")),
        "DeleteOnTermination": as_bool(ebs.get("deleteOnTermination")),
        **optional(ebs, "VolumeSize", "VolumeType"),
    }
