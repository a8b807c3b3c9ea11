"""AWS rules on the baked image, checked over every rendered stack, each citing its source: Image Builder's
downloads, names and endpoints, keeping replaced images for the lifecycle policy, and a deploy that
outlasts a build."""

from __future__ import annotations

import pytest
import yaml

from infra.cli.account_setup import DEPLOY_SESSION_SECONDS
from infra.cli.offline_render import render_config
from infra.components.image_builder import IMAGE_CREATE_TIMEOUT_MINUTES, content_digest
from infra.components.image_retention import IMAGES_KEPT
from infra.config import ROOT, merged_raw, parse_config, read_stack_file
from infra.vm.component import download_folder_problems
from tests.support.rendered import Rendered

COMPONENT = "aws:imagebuilder/component:Component"
RECIPE = "aws:imagebuilder/imageRecipe:ImageRecipe"
IMAGE = "aws:imagebuilder/image:Image"
LIFECYCLE = "aws:imagebuilder/lifecyclePolicy:LifecyclePolicy"


def test_s3_download_folders_exist_before_the_download(stack: Rendered) -> None:
    """Image Builder S3Download: "All folders in the destination path must exist prior to download,
    or the download fails." https://docs.aws.amazon.com/imagebuilder/latest/userguide/toe-action-modules.html"""
    for component in stack.inputs(COMPONENT):
        assert download_folder_problems(yaml.safe_load(component["data"])) == []


def test_old_images_are_kept_for_the_lifecycle_policy_n_per_architecture(stack: Rendered) -> None:
    """DeleteImage "does not delete any EC2 AMIs"
    (https://docs.aws.amazon.com/imagebuilder/latest/APIReference/API_DeleteImage.html): a replaced image
    must stay (retain_on_delete) for a lifecycle policy to delete it with its AMI and snapshots
    (https://docs.aws.amazon.com/imagebuilder/latest/userguide/image-lifecycle-rules.html), and the
    count must be per architecture, so each policy selects images of one architecture only."""
    images = stack.render.of_type(IMAGE)
    policies = stack.inputs(LIFECYCLE)
    if not images:
        assert not policies, "no bake, no retention policy"
        return
    assert len(policies) == len(images), "one lifecycle policy per architecture"
    for image in images:
        assert image.retain_on_delete, f"{image.name}: a replaced image must outlive its Pulumi resource"
        (selecting,) = [p for p in policies if p["resourceSelection"]["tagMap"].items() <= image.inputs["tags"].items()]
        others = [i for i in images if i is not image]
        assert not any(selecting["resourceSelection"]["tagMap"].items() <= o.inputs["tags"].items() for o in others)
        (detail,) = selecting["policyDetails"]
        assert detail["action"] == {"type": "DELETE", "includeResources": {"amis": True, "snapshots": True}}
        assert detail["filter"] == {"type": "COUNT", "value": IMAGES_KEPT}
        assert selecting["resourceType"] == "AMI_IMAGE"
    for kept in (RECIPE, COMPONENT):
        for resource in stack.render.of_type(kept):
            # A retained image keeps its recipe, and the recipe its component: deleting either while
            # something depends on it fails with ResourceDependencyException
            # (terraform-provider-aws #40037, #22127).
            assert resource.retain_on_delete, resource.name


def test_image_builder_names_change_with_every_replacing_input(stack: Rendered) -> None:
    """Components and recipes are immutable per name and version
    (https://docs.aws.amazon.com/imagebuilder/latest/userguide/ibhow-semantic-versioning.html): a
    replacement under the same name fails with "already exists". The name carries the digest of
    every other input as rendered, so no input can change without the name changing."""
    for type_, length in ((COMPONENT, 10), (RECIPE, 12)):
        for inputs in stack.inputs(type_):
            assert inputs["name"].endswith("-" + content_digest(inputs)[:length]), inputs["name"]


def test_the_deploy_job_and_its_role_session_outlast_an_image_build() -> None:
    """An image build may take IMAGE_CREATE_TIMEOUT_MINUTES; the deploy job's timeout
    (https://docs.github.com/en/actions/writing-workflows/workflow-syntax-for-github-actions#jobsjob_idtimeout-minutes)
    and the assumed role's session (configure-aws-credentials role-duration-seconds, default one hour;
    the role's MaxSessionDuration, https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html)
    must outlast it with room for the rest of `pulumi up`."""
    workflow = yaml.safe_load((ROOT / ".github/workflows/deploy-stack.yml").read_text())
    job = workflow["jobs"]["deploy"]
    assert job["timeout-minutes"] >= 2 * IMAGE_CREATE_TIMEOUT_MINUTES
    (credentials,) = [s for s in job["steps"] if "configure-aws-credentials" in s.get("uses", "")]
    assert int(credentials["with"]["role-duration-seconds"]) == DEPLOY_SESSION_SECONDS
    assert job["timeout-minutes"] * 60 <= DEPLOY_SESSION_SECONDS
    assert DEPLOY_SESSION_SECONDS <= 12 * 3600, "IAM's MaxSessionDuration is at most 12 hours"


# What Image Builder's build instance calls, in a subnet without internet access (its own endpoint, and the
# SSM agent's); see infra/components/network.py for the sources.
BUILD_ENDPOINTS = ("imagebuilder", "ssm", "ec2messages", "ssmmessages", "logs")


def test_image_builds_reach_image_builder_without_internet(stack: Rendered) -> None:
    """With egress=endpoints and imageMode bake, the build instance has no NAT: every endpoint it calls
    exists in its subnets and admits its security group on 443
    (https://docs.aws.amazon.com/imagebuilder/latest/userguide/vpc-interface-endpoints.html,
    https://docs.aws.amazon.com/systems-manager/latest/userguide/setup-create-vpc.html)."""
    config = stack.config
    if config.egress != "endpoints" or config.vpc_id or config.image_mode != "bake":
        pytest.skip("the build reaches AWS through a NAT gateway, or there is no build")
    region = config.region
    services = {e["serviceName"]: e for e in stack.inputs("aws:ec2/vpcEndpoint:VpcEndpoint")}
    admitted = {
        rule["referencedSecurityGroupId"]
        for rule in stack.inputs("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if rule["securityGroupId"] == "network-endpoints-id" and rule["fromPort"] <= 443 <= rule["toPort"]
    }
    for infrastructure in stack.inputs("aws:imagebuilder/infrastructureConfiguration:InfrastructureConfiguration"):
        (group,) = infrastructure["securityGroupIds"]
        assert group in admitted
        for service in BUILD_ENDPOINTS:
            endpoint = services.get(f"com.amazonaws.{region}.{service}")
            assert endpoint is not None, f"no {service} endpoint for the image build"
            assert endpoint["vpcEndpointType"] == "Interface"
            assert endpoint["privateDnsEnabled"] is True
            assert infrastructure["subnetId"] in endpoint["subnetIds"]


def test_an_endpoints_stack_that_bakes_renders_every_endpoint_its_build_needs() -> None:
    """The rule above on a render that needs it (no stack file has egress endpoints with bake)."""
    values = {**read_stack_file("prod"), "egress": "endpoints", "imageMode": "bake"}
    config = parse_config("prod", merged_raw(values))
    test_image_builds_reach_image_builder_without_internet(Rendered(config, render_config(config, values)))
