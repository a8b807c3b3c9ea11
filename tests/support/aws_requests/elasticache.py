"""ElastiCache: the Redis broker's replication group, parameter group and subnet group."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tests.support.aws_requests.members import Builder, Call, name_of, optional, plain, required


def _replication_group(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    yield (
        "elasticache",
        "CreateReplicationGroup",
        {
            "ReplicationGroupId": name_of(i, name, "replicationGroupId")[:40],
            "ReplicationGroupDescription": i["description"],
            **optional(
                i,
                "Engine",
                "EngineVersion",
                "NumCacheClusters",
                "AutomaticFailoverEnabled",
                "SecurityGroupIds",
                "Port",
                "AtRestEncryptionEnabled",
                "TransitEncryptionEnabled",
                "TransitEncryptionMode",
                "SnapshotRetentionLimit",
                "SnapshotWindow",
                "AutoMinorVersionUpgrade",
                "KmsKeyId",
            ),
            "CacheNodeType": i.get("nodeType"),
            "MultiAZEnabled": i.get("multiAzEnabled"),
            "CacheParameterGroupName": i.get("parameterGroupName"),
            "CacheSubnetGroupName": i.get("subnetGroupName"),
            "AuthToken": plain(i.get("authToken")),
            "PreferredMaintenanceWindow": i.get("maintenanceWindow"),
            "LogDeliveryConfigurations": [
                {
                    **required(c, "LogType", "DestinationType", "LogFormat"),
                    "DestinationDetails": {"CloudWatchLogsDetails": {"LogGroup": c["destination"]}},
                }
                for c in i.get("logDeliveryConfigurations", [])
            ]
            or None,
        },
    )


def _parameter_group(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    group = name_of(i, name)
    yield (
        "elasticache",
        "CreateCacheParameterGroup",
        {"CacheParameterGroupName": group, "CacheParameterGroupFamily": i["family"], "Description": i["description"]},
    )
    if i.get("parameters"):
        yield (
            "elasticache",
            "ModifyCacheParameterGroup",
            {
                "CacheParameterGroupName": group,
                "ParameterNameValues": [
                    {"ParameterName": p["name"], "ParameterValue": p["value"]} for p in i["parameters"]
                ],
            },
        )


def _subnet_group(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    yield (
        "elasticache",
        "CreateCacheSubnetGroup",
        {
            "CacheSubnetGroupName": name_of(i, name),
            "CacheSubnetGroupDescription": i.get("description"),
            **required(i, "SubnetIds"),
        },
    )


BUILDERS: dict[str, Builder] = {
    "aws:elasticache/replicationGroup:ReplicationGroup": _replication_group,
    "aws:elasticache/parameterGroup:ParameterGroup": _parameter_group,
    "aws:elasticache/subnetGroup:SubnetGroup": _subnet_group,
}
