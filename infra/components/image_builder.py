"""EC2 Image Builder resources of a bake: the component, the build identity, a recipe and an image per architecture.

Components and recipes are immutable per name and version: a change is a new version, never an
update (https://docs.aws.amazon.com/imagebuilder/latest/userguide/ibhow-semantic-versioning.html;
the provider marks every argument of both as forcing replacement). Any input
change makes Pulumi replace the resource, and a replacement under the same name and version fails
with "already exists". So the name carries a digest of every other input as the engine sends it
(`content_digest`); `tests/unit/infra/test_aws_rules_images.py` recomputes it from the render.

Old images are kept on replacement (`retain_on_delete`): DeleteImage "does not delete any EC2 AMIs"
(https://docs.aws.amazon.com/imagebuilder/latest/APIReference/API_DeleteImage.html), so deleting the
image resource would orphan its AMI where no lifecycle policy sees it. `infra.components.image_retention`
deletes all but the newest few, AMIs and snapshots included. Recipes and the component are kept
with them, because an image needs its recipe and a recipe its component.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_aws as aws

from infra.artefacts.manifest import BuildArtefacts
from infra.artefacts.targets import Arch
from infra.components.artefact_bucket import read_artefacts_policy
from infra.components.instance import ROOT_DEVICE, SSM_CORE_POLICY
from infra.components.roles import attach_managed, inline_policy, instance_profile, service_role
from infra.config import StackConfig
from infra.vm.component import component_parameters, component_text

BUILDER_PROFILE_POLICY: Final = "arn:aws:iam::aws:policy/EC2InstanceProfileForImageBuilder"

# Build instances: small and cheap; the build installs a few dozen wheels.
BUILD_INSTANCE_TYPES: Final[Mapping[Arch, tuple[str, ...]]] = {
    "arm64": ("t4g.medium",),
    "x86_64": ("t3.medium",),
}
ROOT_VOLUME_GB: Final = 8
TEST_TIMEOUT_MINUTES: Final = 60
"""Image Builder's timeout for the image's test phase."""
IMAGE_CREATE_TIMEOUT_MINUTES: Final = 2 * TEST_TIMEOUT_MINUTES
"""How long `pulumi up` waits for one image (build, then test): the CI deploy job and its AWS role
session must outlast it (`.github/workflows/deploy-stack.yml`, `infra.cli.account_setup`)."""
NAMING_INPUTS: Final = ("name", "version", "tags")
"""Inputs that are not part of a component's or recipe's content (the name carries the content's digest)."""
COMPONENT_DESCRIPTION: Final = "celery-cluster worker: Python venv from the wheelhouse, units, CloudWatch agent"


def content_digest(inputs: Mapping[str, Any]) -> str:
    """sha256 of a resource's inputs as the engine receives them (camelCase), naming inputs left out."""
    content = {key: value for key, value in inputs.items() if key not in NAMING_INPUTS}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def image_tags(stack: str, arch: Arch) -> dict[str, str]:
    """Tags of every Image Builder resource of one architecture; `celery-cluster:image` selects them for retention."""
    return {"celery-cluster:stack": stack, "celery-cluster:arch": arch, "celery-cluster:image": f"{stack}-{arch}"}


def component_content() -> dict[str, Any]:
    return {
        "data": component_text(),
        "description": COMPONENT_DESCRIPTION,
        "platform": "Linux",
        "supportedOsVersions": ["Amazon Linux 2023"],
    }


def create_component(name: str, config: StackConfig, opts: pulumi.ResourceOptions) -> aws.imagebuilder.Component:
    content = component_content()
    return aws.imagebuilder.Component(
        f"{name}-component",
        aws.imagebuilder.ComponentArgs(
            name=f"celery-cluster-{config.stack}-worker-{content_digest(content)[:10]}",
            version="1.0.0",
            platform=content["platform"],
            supported_os_versions=content["supportedOsVersions"],
            description=content["description"],
            data=content["data"],
        ),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(retain_on_delete=True)),
    )


@dataclass(frozen=True)
class BuilderIdentity:
    profile: aws.iam.InstanceProfile
    grants: Sequence[pulumi.Resource]
    """The role's policies: a build must not start before they exist (the first thing it does is read S3)."""


def create_builder_identity(
    name: str, config: StackConfig, bucket_arn: pulumi.Output[str], opts: pulumi.ResourceOptions
) -> BuilderIdentity:
    role = service_role(
        f"{name}-builder-role",
        "ec2.amazonaws.com",
        f"celery-cluster {config.stack} Image Builder build and test instances",
        opts,
    )
    grants: list[pulumi.Resource] = [
        attach_managed(f"{name}-{label}", role, arn, opts)
        for label, arn in (("builder", BUILDER_PROFILE_POLICY), ("builder-ssm", SSM_CORE_POLICY))
    ]
    artefacts = bucket_arn.apply(lambda arn: json.dumps(read_artefacts_policy(arn)))
    grants.append(inline_policy(f"{name}-builder-artefacts", role, artefacts, opts))
    profile = instance_profile(f"{name}-builder-profile", role, opts)
    return BuilderIdentity(profile, grants)


def recipe_content(parent_ami: str, component_arn: str, parameters: Mapping[str, str]) -> dict[str, Any]:
    """Everything a recipe is made of, shaped as the engine receives it (its digest names the recipe)."""
    return {
        "blockDeviceMappings": [
            {
                "deviceName": ROOT_DEVICE,
                "ebs": {
                    "deleteOnTermination": "true",
                    "encrypted": "true",
                    "volumeSize": ROOT_VOLUME_GB,
                    "volumeType": "gp3",
                },
            }
        ],
        "components": [
            {"componentArn": component_arn, "parameters": [{"name": k, "value": v} for k, v in parameters.items()]}
        ],
        "parentImage": parent_ami,
    }


@dataclass(frozen=True)
class BakeArgs:
    config: StackConfig
    arch: Arch
    artefacts: BuildArtefacts
    parent_ami: pulumi.Input[str]
    component: aws.imagebuilder.Component
    identity: BuilderIdentity
    wheelhouse: aws.s3.BucketObjectv2
    image_files: aws.s3.BucketObjectv2
    subnet_id: pulumi.Input[str]
    security_group_id: pulumi.Input[str]


def _first_ami(resources: Sequence[aws.imagebuilder.outputs.ImageOutputResource] | None) -> str:
    images = resources[0].amis if resources else None
    if not images or not images[0].image:
        raise ValueError("the image build reported no AMI")
    return images[0].image


def create_image(name: str, args: BakeArgs, opts: pulumi.ResourceOptions) -> pulumi.Output[str]:
    """Recipe, infrastructure, distribution and the image of one architecture; returns its AMI id."""
    kept = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(retain_on_delete=True))
    tags = image_tags(args.config.stack, args.arch)
    recipe = _create_recipe(name, args, tags, kept)
    infrastructure = _create_infrastructure(name, args, tags, opts)
    distribution = _create_distribution(name, args, tags, opts)
    image = aws.imagebuilder.Image(
        f"{name}-{args.arch}",
        aws.imagebuilder.ImageArgs(
            image_recipe_arn=recipe.arn,
            infrastructure_configuration_arn=infrastructure.arn,
            distribution_configuration_arn=distribution.arn,
            image_tests_configuration=aws.imagebuilder.ImageImageTestsConfigurationArgs(
                image_tests_enabled=True, timeout_minutes=TEST_TIMEOUT_MINUTES
            ),
            enhanced_image_metadata_enabled=True,
            tags=tags,
        ),
        opts=pulumi.ResourceOptions.merge(
            kept,
            pulumi.ResourceOptions(
                # IAM is eventually consistent: the build reads S3 with the role's policies first thing.
                # https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency
                depends_on=list(args.identity.grants),
                custom_timeouts=pulumi.CustomTimeouts(create=f"{IMAGE_CREATE_TIMEOUT_MINUTES}m"),
            ),
        ),
    )
    return image.output_resources.apply(_first_ami)


def _recipe_content(args: BakeArgs) -> pulumi.Output[dict[str, Any]]:
    arch = args.arch
    return pulumi.Output.all(
        args.parent_ami, args.component.arn, args.wheelhouse.bucket, args.wheelhouse.key, args.image_files.key
    ).apply(
        lambda v: recipe_content(
            v[0],
            v[1],
            component_parameters(
                wheelhouse_uri=f"s3://{v[2]}/{v[3]}",
                wheelhouse_sha256=args.artefacts.wheelhouse(arch).sha256,
                image_files_uri=f"s3://{v[2]}/{v[4]}",
                image_files_sha256=args.artefacts.image_files.sha256,
            ),
        )
    )


def _create_recipe(
    name: str, args: BakeArgs, tags: dict[str, str], opts: pulumi.ResourceOptions
) -> aws.imagebuilder.ImageRecipe:
    config, arch = args.config, args.arch
    content = _recipe_content(args)
    return aws.imagebuilder.ImageRecipe(
        f"{name}-recipe-{arch}",
        aws.imagebuilder.ImageRecipeArgs(
            name=content.apply(lambda c: f"celery-cluster-{config.stack}-{arch}-{content_digest(c)[:12]}"),
            version="1.0.0",
            parent_image=content.apply(lambda c: str(c["parentImage"])),
            components=[
                aws.imagebuilder.ImageRecipeComponentArgs(
                    component_arn=content.apply(lambda c: str(c["components"][0]["componentArn"])),
                    parameters=content.apply(
                        lambda c: [
                            aws.imagebuilder.ImageRecipeComponentParameterArgs(name=p["name"], value=p["value"])
                            for p in c["components"][0]["parameters"]
                        ]
                    ),
                )
            ],
            block_device_mappings=[
                aws.imagebuilder.ImageRecipeBlockDeviceMappingArgs(
                    device_name=ROOT_DEVICE,
                    ebs=aws.imagebuilder.ImageRecipeBlockDeviceMappingEbsArgs(
                        encrypted="true", volume_type="gp3", volume_size=ROOT_VOLUME_GB, delete_on_termination="true"
                    ),
                )
            ],
            tags=tags,
        ),
        opts=opts,
    )


def _create_infrastructure(
    name: str, args: BakeArgs, tags: dict[str, str], opts: pulumi.ResourceOptions
) -> aws.imagebuilder.InfrastructureConfiguration:
    config, arch = args.config, args.arch
    return aws.imagebuilder.InfrastructureConfiguration(
        f"{name}-infra-{arch}",
        aws.imagebuilder.InfrastructureConfigurationArgs(
            name=f"celery-cluster-{config.stack}-{arch}",
            description=f"celery-cluster {config.stack} {arch} image builds, in a private subnet",
            instance_profile_name=args.identity.profile.name,
            instance_types=list(BUILD_INSTANCE_TYPES[arch]),
            subnet_id=args.subnet_id,
            security_group_ids=[args.security_group_id],
            terminate_instance_on_failure=True,
            instance_metadata_options=aws.imagebuilder.InfrastructureConfigurationInstanceMetadataOptionsArgs(
                http_tokens="required", http_put_response_hop_limit=1
            ),
            resource_tags=tags,
            tags=tags,
        ),
        opts=opts,
    )


def _create_distribution(
    name: str, args: BakeArgs, tags: dict[str, str], opts: pulumi.ResourceOptions
) -> aws.imagebuilder.DistributionConfiguration:
    config, arch = args.config, args.arch
    ami = aws.imagebuilder.DistributionConfigurationDistributionAmiDistributionConfigurationArgs(
        name=f"celery-cluster-{config.stack}-{arch}-{{{{ imagebuilder:buildDate }}}}",
        description=f"celery-cluster {config.stack} worker ({arch})",
        ami_tags=tags,
    )
    return aws.imagebuilder.DistributionConfiguration(
        f"{name}-distribution-{arch}",
        aws.imagebuilder.DistributionConfigurationArgs(
            name=f"celery-cluster-{config.stack}-{arch}",
            distributions=[
                aws.imagebuilder.DistributionConfigurationDistributionArgs(
                    region=config.region, ami_distribution_configuration=ami
                )
            ],
            tags=tags,
        ),
        opts=opts,
    )
