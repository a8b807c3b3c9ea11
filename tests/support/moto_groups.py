"""An Auto Scaling group on moto, for the tests that read in-service counts (publisher, smoke function)."""

from __future__ import annotations

import boto3


def create_group(name: str, region: str, desired: int, max_size: int) -> None:
    """A group `name` of `desired` instances from a throwaway launch template (moto launches them)."""
    ec2 = boto3.client("ec2", region_name=region)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    template = ec2.create_launch_template(
        LaunchTemplateName=f"{name}-lt", LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    boto3.client("autoscaling", region_name=region).create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateId": template},
        MinSize=0,
        MaxSize=max_size,
        DesiredCapacity=desired,
        AvailabilityZones=[f"{region}a"],
    )
