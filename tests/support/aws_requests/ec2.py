"""EC2: launch templates and VPC security group rules."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tests.support.aws_requests.members import (
    Builder,
    Call,
    as_bool,
    ebs_volume,
    name_of,
    optional,
    pascal,
    required,
    tags,
)


def _launch_template(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    data = {
        **optional(i, "ImageId", "InstanceType", "UserData"),
        "IamInstanceProfile": pascal(i.get("iamInstanceProfile")),
        "MetadataOptions": pascal(i.get("metadataOptions")),
        "Monitoring": pascal(i.get("monitoring")),
        "BlockDeviceMappings": [
            {"DeviceName": b["deviceName"], "Ebs": ebs_volume(b["ebs"])} for b in i.get("blockDeviceMappings", [])
        ]
        or None,
        "NetworkInterfaces": [
            {
                **optional(n, "DeviceIndex"),
                "AssociatePublicIpAddress": as_bool(n.get("associatePublicIpAddress")),
                "DeleteOnTermination": as_bool(n.get("deleteOnTermination")),
                "Groups": n.get("securityGroups"),
            }
            for n in i.get("networkInterfaces", [])
        ]
        or None,
        "TagSpecifications": [
            {"ResourceType": t["resourceType"], "Tags": tags(t.get("tags"))} for t in i.get("tagSpecifications", [])
        ]
        or None,
    }
    yield (
        "ec2",
        "CreateLaunchTemplate",
        {
            "LaunchTemplateName": name_of(i, name),
            "VersionDescription": i.get("description"),
            "LaunchTemplateData": data,
            "TagSpecifications": [{"ResourceType": "launch-template", "Tags": tags(i.get("tags"))}]
            if i.get("tags")
            else None,
        },
    )


def _security_group_rule(direction: str) -> Builder:
    def build(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
        permission = {
            **required(i, "IpProtocol"),
            **optional(i, "FromPort", "ToPort"),
            "IpRanges": [{"CidrIp": i["cidrIpv4"], "Description": i.get("description")}] if i.get("cidrIpv4") else None,
            "UserIdGroupPairs": [{"GroupId": i["referencedSecurityGroupId"], "Description": i.get("description")}]
            if i.get("referencedSecurityGroupId")
            else None,
        }
        yield (
            "ec2",
            f"AuthorizeSecurityGroup{direction}",
            {"GroupId": i["securityGroupId"], "IpPermissions": [permission]},
        )

    return build


BUILDERS: dict[str, Builder] = {
    "aws:ec2/launchTemplate:LaunchTemplate": _launch_template,
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": _security_group_rule("Ingress"),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": _security_group_rule("Egress"),
}
