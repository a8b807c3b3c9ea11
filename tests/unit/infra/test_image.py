"""The worker image as rendered under Pulumi's mocks: Image Builder per pool architecture (bake),
the launch template on the baked AMI, instance refresh, boot mode from the stack's own bucket,
and a changed wheel rolling only the pools whose image it changes."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
from typing import Any

import pytest
import yaml

from infra import outputs
from infra.artefacts.manifest import Artefact, placeholder_artefacts
from infra.cli import offline_render as render
from infra.cli.offline_render import Render, render_config
from infra.config import load_stack_config, merged_raw, parse_config, read_stack_file
from infra.vm.component import component_text
from tests.support.rendered import Rendered

LT = "aws:ec2/launchTemplate:LaunchTemplate"
ASG = "aws:autoscaling/group:Group"
RECIPE = "aws:imagebuilder/imageRecipe:ImageRecipe"
IMAGE = "aws:imagebuilder/image:Image"
INFRA = "aws:imagebuilder/infrastructureConfiguration:InfrastructureConfiguration"
DISTRIBUTION = "aws:imagebuilder/distributionConfiguration:DistributionConfiguration"
COMPONENT = "aws:imagebuilder/component:Component"
BUCKET = "aws:s3/bucket:Bucket"
OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
BASE_AMI = "ami-0123456789abcdef0"  # what the mocks answer for the AL2023 SSM parameter


def architectures(stack: Rendered) -> set[str]:
    return {pool.architecture for pool in stack.config.pools.values()}


def user_data(stack: Rendered, pool: str) -> dict[str, Any]:
    text = base64.b64decode(stack.one(LT, f"pool-{pool}-lt")["userData"]).decode()
    assert text.startswith("#cloud-config\n")
    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    return loaded


def test_prod_bakes_one_image_per_pool_architecture(prod: Rendered) -> None:
    assert prod.config.image_mode == "bake"
    arches = architectures(prod)
    assert arches == {"arm64", "x86_64"}
    (component,) = prod.inputs(COMPONENT)
    assert component["data"] == component_text()
    assert component["platform"] == "Linux"
    assert {name.rsplit("-", 1)[-1] for name in prod.named(RECIPE)} == arches
    assert {name.rsplit("-", 1)[-1] for name in prod.named(IMAGE)} == arches
    private = {name + "-id" for name in prod.named("aws:ec2/subnet:Subnet") if "-private-" in name}
    for arch in arches:
        recipe = prod.one(RECIPE, f"image-recipe-{arch}")
        assert recipe["parentImage"] == BASE_AMI  # the current AL2023 AMI, resolved at deploy time
        (entry,) = recipe["components"]
        parameters = {p["name"]: p["value"] for p in entry["parameters"]}
        assert parameters["WheelhouseS3Uri"].endswith(f"/wheelhouse-{arch}.tar.gz")
        assert re.fullmatch(r"[0-9a-f]{64}", parameters["WheelhouseSha256"])
        assert all(m["ebs"]["encrypted"] == "true" for m in recipe["blockDeviceMappings"])
        infrastructure = prod.one(INFRA, f"image-infra-{arch}")
        assert infrastructure["subnetId"] in private
        assert infrastructure["instanceMetadataOptions"]["httpTokens"] == "required"
        assert infrastructure["terminateInstanceOnFailure"] is True
        assert "keyPair" not in infrastructure
        distribution = prod.one(DISTRIBUTION, f"image-distribution-{arch}")
        assert distribution["distributions"][0]["region"] == prod.config.region
        image = prod.one(IMAGE, f"image-{arch}")
        assert image["imageRecipeArn"].endswith(f"/{recipe['name']}/1.0.0")
        assert image["imageTestsConfiguration"]["imageTestsEnabled"] is True


def test_launch_templates_take_the_baked_image(prod: Rendered) -> None:
    amis = prod.document["outputs"][outputs.WORKER_IMAGE_IDS]
    for name, pool in prod.config.pools.items():
        template = prod.one(LT, f"pool-{name}-lt")
        image = prod.one(IMAGE, f"image-{pool.architecture}")
        expected = "ami-" + hashlib.sha256(image["imageRecipeArn"].encode()).hexdigest()[:17]
        assert template["imageId"] == expected == amis[name]
        assert template["imageId"] != BASE_AMI
        assert "s3://" not in base64.b64decode(template["userData"]).decode(), "a baked image downloads nothing"


def test_a_new_template_version_rolls_the_group_with_instance_refresh(stack: Rendered) -> None:
    plans = stack.document["outputs"][outputs.POOL_REFRESH]
    for name, pool in stack.config.pools.items():
        group = stack.one(ASG, f"pool-{name}-asg")
        # The deploy step's refresh (infra.cli.canary_rollout) rolls the new version out, not the provider's.
        assert "instanceRefresh" not in group
        assert plans[name]["preferences"]["MinHealthyPercentage"] >= 50
        spec = (
            group["launchTemplate"]
            if pool.warm_pool.enabled
            else group["mixedInstancesPolicy"]["launchTemplate"]["launchTemplateSpecification"]
        )
        # A version number (not $Latest): the group is created on it, and the refresh rolls to the next.
        assert spec["version"].isdigit()
        assert plans[name]["launchTemplateVersion"] == spec["version"]
        template = stack.one(LT, f"pool-{name}-lt")
        assert template["updateDefaultVersion"] is True
        # The refresh drains through the termination hook that the drain agent completes.
        hook = stack.one("aws:autoscaling/lifecycleHook:LifecycleHook", f"pool-{name}-drain")
        env = written_env(user_data(stack, name))
        assert env["DRAIN_LIFECYCLE_HOOK_NAME"] == hook["name"]
        # The agent heartbeats the hook, so its drain may outlast the heartbeat timeout, never the reverse.
        assert int(env["DRAIN_TIMEOUT"]) >= hook["heartbeatTimeout"]


def written_env(config: dict[str, Any]) -> dict[str, str]:
    (content,) = [f["content"] for f in config["write_files"] if f["path"] == "/etc/celery-cluster/pool.env"]
    return dict(line.split("=", 1) for line in content.splitlines() if line and not line.startswith("#"))


def test_boot_mode_installs_only_from_the_stacks_own_bucket(dev: Rendered) -> None:
    assert dev.config.image_mode == "boot"
    assert not dev.inputs(IMAGE), "boot mode builds no image"
    (bucket_inputs,) = dev.inputs(BUCKET)
    bucket = bucket_inputs["bucketPrefix"] + "20261124mock"
    keys = {o["key"] for o in dev.inputs(OBJECT)}
    for name, pool in dev.config.pools.items():
        assert dev.one(LT, f"pool-{name}-lt")["imageId"] == BASE_AMI  # stock Amazon Linux 2023
        config = user_data(dev, name)
        runcmd = " ".join(" ".join(map(str, c)) if isinstance(c, list) else str(c) for c in config["runcmd"])
        uris = re.findall(r"[a-z0-9]+://\S+", runcmd)
        assert len(uris) == 2
        for uri in uris:
            assert uri.startswith(f"s3://{bucket}/builds/")
            assert uri.removeprefix(f"s3://{bucket}/") in keys
        assert f"wheelhouse-{pool.architecture}.tar.gz" in runcmd
        assert "pip" not in runcmd
        # The pool's role may read exactly those build artefacts.
        policy = json.loads(dev.one("aws:iam/rolePolicy:RolePolicy", f"pool-{name}-artefacts")["policy"])
        (statement,) = policy["Statement"]
        assert statement["Action"] == ["s3:GetObject"]
        assert statement["Resource"] == f"arn:aws:s3:::{bucket}/builds/*"
    (block,) = dev.inputs("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls"))


def render_prod_with(wheel_digest: str, monkeypatch: pytest.MonkeyPatch) -> Render:
    """prod rendered as if `make build` had produced an arm64 wheelhouse with this sha256."""
    artefacts = placeholder_artefacts()
    arm = artefacts.wheelhouse("arm64")
    changed = dataclasses.replace(
        artefacts, wheelhouses={**artefacts.wheelhouses, "arm64": Artefact(arm.name, wheel_digest, arm.path)}
    )
    monkeypatch.setattr(render, "worker_artefacts", lambda config, placeholder=False: changed)
    return render_config(load_stack_config("prod"), read_stack_file("prod"))


def test_a_changed_wheel_makes_a_new_image_and_rolls_only_its_pools(monkeypatch: pytest.MonkeyPatch) -> None:
    before = json.loads(json.dumps(render_prod_with("1" * 64, monkeypatch).as_json()))
    after = json.loads(json.dumps(render_prod_with("2" * 64, monkeypatch).as_json()))

    def find(document: dict[str, Any], type_: str, name: str) -> dict[str, Any]:
        (found,) = [r["inputs"] for r in document["resources"] if r["type"] == type_ and r["name"] == name]
        assert isinstance(found, dict)
        return found

    assert find(before, RECIPE, "image-recipe-arm64")["name"] != find(after, RECIPE, "image-recipe-arm64")["name"]
    assert find(before, IMAGE, "image-arm64")["imageRecipeArn"] != find(after, IMAGE, "image-arm64")["imageRecipeArn"]
    # arm64 pool (default): new AMI in its launch template; x86_64 pool (reports): untouched.
    assert find(before, LT, "pool-default-lt")["imageId"] != find(after, LT, "pool-default-lt")["imageId"]
    assert find(before, LT, "pool-reports-lt")["imageId"] == find(after, LT, "pool-reports-lt")["imageId"]
    assert find(before, RECIPE, "image-recipe-x86_64") == find(after, RECIPE, "image-recipe-x86_64")


def test_ami_mode_uses_the_given_image_and_builds_nothing() -> None:
    values = {**read_stack_file("prod"), "imageMode": "ami", "imageAmiId": "ami-0a1b2c3d"}
    document = render_config(parse_config("prod", merged_raw(values)), values).as_json()
    types = {r["type"] for r in document["resources"]}
    assert not {t for t in types if t.startswith("aws:imagebuilder/")}
    assert BUCKET not in types
    for resource in document["resources"]:
        if resource["type"] == LT:
            assert resource["inputs"]["imageId"] == "ami-0a1b2c3d"
