"""The worker image: the stack's artefact bucket and, in `bake` mode, EC2 Image Builder.

`image.mode` (config key `celery-cluster:imageMode`):
- `bake` (prod default): `make build`'s wheelhouse and image files go to the stack's own bucket
  under content-addressed keys; an Image Builder recipe per pool architecture, on the current
  Amazon Linux 2023 AMI, runs `image/imagebuilder/component.yaml` with their S3 URIs and sha256 as
  parameters. A changed wheel is a changed recipe (its name carries a digest of everything that
  goes in), so Pulumi builds a new image; its AMI id is the launch template's image, so the
  template gets a new version and the group an instance refresh, which drains each old worker.
- `boot` (dev): the same bucket and artefacts, no Image Builder; instances start from the stock
  AMI and user data installs the wheelhouse from the bucket (`infra.vm.user_data`).
- `ami`: bring your own AMI (`imageAmiId`); nothing is created here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pulumi
import pulumi_aws as aws

from infra.artefacts.manifest import BuildArtefacts
from infra.artefacts.targets import Arch
from infra.components import iam
from infra.config import StackConfig
from infra.vm.component import component_parameters, component_text
from infra.vm.user_data import BootArtefacts

TYPE: Final = "celery-cluster:image:WorkerImage"
BUILDER_PROFILE_POLICY: Final = "arn:aws:iam::aws:policy/EC2InstanceProfileForImageBuilder"
SSM_CORE_POLICY: Final = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
# Build instances: small and cheap; the build installs a few dozen wheels.
BUILD_INSTANCE_TYPES: Final[Mapping[Arch, tuple[str, ...]]] = {
    "arm64": ("t4g.medium",),
    "x86_64": ("t3.medium",),
}
ROOT_DEVICE: Final = "/dev/xvda"
BUILD_TIMEOUT_MINUTES: Final = 60
LIFECYCLE_EXECUTION_POLICY: Final = "arn:aws:iam::aws:policy/service-role/EC2ImageBuilderLifecycleExecutionPolicy"
# Old images kept for a rollback (a launch template's earlier version); older ones are deleted,
# unless an instance was launched from them in the last week.
IMAGES_KEPT: Final = 3
KEEP_IF_LAUNCHED_DAYS: Final = 7


def read_artefacts_policy(bucket_arn: str) -> iam.Document:
    """Instances (boot mode) and image builds read the stack's build artefacts, nothing else."""
    return iam.document(
        {
            "Sid": "ReadBuildArtefacts",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": f"{bucket_arn}/builds/*",
        }
    )


def base_image_id(config: StackConfig, arch: Arch) -> pulumi.Output[str]:
    """The current Amazon Linux 2023 AMI for `arch`, resolved at deploy time from its SSM parameter.

    A concrete id (not `resolve:ssm:`): a new base AMI changes the recipe, so the next `pulumi up`
    bakes on it and rolls the pools.
    """
    return aws.ssm.get_parameter_output(name=config.image_ssm_parameter.replace("{arch}", arch)).value


def recipe_digest(artefacts: BuildArtefacts, arch: Arch) -> str:
    """What goes into an image: the component document and this architecture's artefacts."""
    parts = [
        hashlib.sha256(component_text().encode()).hexdigest(),
        artefacts.wheelhouse(arch).sha256,
        artefacts.image_files.sha256,
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _boot_artefacts(wheelhouse_sha256: str, image_files_sha256: str) -> Callable[[list[str]], BootArtefacts]:
    def make(values: list[str]) -> BootArtefacts:
        bucket, wheelhouse_key, image_files_key = values
        return BootArtefacts(bucket, wheelhouse_key, wheelhouse_sha256, image_files_key, image_files_sha256)

    return make


def _first_ami(resources: Sequence[aws.imagebuilder.outputs.ImageOutputResource] | None) -> str:
    images = resources[0].amis if resources else None
    if not images or not images[0].image:
        raise ValueError("the image build reported no AMI")
    return images[0].image


@dataclass(frozen=True)
class WorkerImageArgs:
    config: StackConfig
    artefacts: BuildArtefacts
    architectures: Sequence[Arch]
    subnet_id: pulumi.Input[str]
    """A private subnet for the build instances (bake)."""
    security_group_id: pulumi.Input[str]
    """Build instances need HTTPS out only (S3, SSM, the Amazon Linux repositories)."""


class WorkerImage(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    image_ids: dict[Arch, pulumi.Output[str]]
    """The AMI each pool architecture launches from (bake: the baked image; boot: the stock AMI)."""
    boot_artefacts: dict[Arch, pulumi.Output[BootArtefacts]]

    def __init__(self, name: str, args: WorkerImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        config = args.config
        if config.image_mode == "ami":
            raise ValueError("WorkerImage is for imageMode bake or boot; ami needs no image resources")
        bucket = self._create_bucket(config)
        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        image_files = self._upload(bucket, "image-files", args.artefacts.image_files.key, args)
        self.boot_artefacts = {}
        self.image_ids = {}
        uploads: dict[Arch, aws.s3.BucketObjectv2] = {}
        for arch in args.architectures:
            wheelhouse = args.artefacts.wheelhouse(arch)
            uploads[arch] = self._upload(bucket, f"wheelhouse-{arch}", wheelhouse.key, args, wheelhouse.path)
            self.boot_artefacts[arch] = pulumi.Output.all(bucket.bucket, uploads[arch].key, image_files.key).apply(
                _boot_artefacts(wheelhouse.sha256, args.artefacts.image_files.sha256)
            )
        if config.image_mode == "bake":
            component = self._create_component(config)
            profile = self._create_builder_identity(config, bucket)
            for arch in args.architectures:
                self.image_ids[arch] = self._create_image(args, arch, component, profile, uploads[arch], image_files)
            self._create_lifecycle_policy(config)
        else:
            for arch in args.architectures:
                self.image_ids[arch] = base_image_id(config, arch)
        self.register_outputs(
            {
                "bucketName": self.bucket_name,
                "imageIds": pulumi.Output.all(*self.image_ids.values()).apply(
                    lambda ids: dict(zip(self.image_ids, ids, strict=True))
                ),
            }
        )

    def _create_bucket(self, config: StackConfig) -> aws.s3.Bucket:
        bucket = aws.s3.Bucket(
            f"{self._name}-artefacts",
            aws.s3.BucketArgs(
                bucket_prefix=f"celery-cluster-{config.stack}-artefacts-",
                force_destroy=True,  # only build outputs live here; `make build` recreates them
                tags={"celery-cluster:stack": config.stack},
            ),
            opts=self._child,
        )
        aws.s3.BucketPublicAccessBlock(
            f"{self._name}-artefacts",
            aws.s3.BucketPublicAccessBlockArgs(
                bucket=bucket.id,
                block_public_acls=True,
                block_public_policy=True,
                ignore_public_acls=True,
                restrict_public_buckets=True,
            ),
            opts=self._child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{self._name}-artefacts",
            aws.s3.BucketServerSideEncryptionConfigurationInitArgs(
                bucket=bucket.id,
                rules=[
                    aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                        apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                            sse_algorithm="AES256"
                        )
                    )
                ],
            ),
            opts=self._child,
        )
        return bucket

    def _upload(
        self,
        bucket: aws.s3.Bucket,
        label: str,
        key: str,
        args: WorkerImageArgs,
        path: Path | None = None,
    ) -> aws.s3.BucketObjectv2:
        source = str(path if path is not None else args.artefacts.image_files.path)
        return aws.s3.BucketObjectv2(
            f"{self._name}-{label}",
            aws.s3.BucketObjectv2Args(
                bucket=bucket.id,
                key=key,
                source=pulumi.FileAsset(source),
                content_type="application/gzip",
                server_side_encryption="AES256",
            ),
            opts=self._child,
        )

    def _create_component(self, config: StackConfig) -> aws.imagebuilder.Component:
        text = component_text()
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        # Components are immutable: a changed document is a new component (new name), not an update.
        return aws.imagebuilder.Component(
            f"{self._name}-component",
            aws.imagebuilder.ComponentArgs(
                name=f"celery-cluster-{config.stack}-worker-{digest}",
                version="1.0.0",
                platform="Linux",
                supported_os_versions=["Amazon Linux 2023"],
                description="celery-cluster worker: Python 3.11 venv from the wheelhouse, units, CloudWatch agent",
                data=text,
            ),
            opts=self._child,
        )

    def _create_builder_identity(self, config: StackConfig, bucket: aws.s3.Bucket) -> aws.iam.InstanceProfile:
        role = aws.iam.Role(
            f"{self._name}-builder-role",
            aws.iam.RoleArgs(
                assume_role_policy=json.dumps(iam.assume_role("ec2.amazonaws.com")),
                description=f"celery-cluster {config.stack} Image Builder build and test instances",
            ),
            opts=self._child,
        )
        for label, arn in (("builder", BUILDER_PROFILE_POLICY), ("builder-ssm", SSM_CORE_POLICY)):
            aws.iam.RolePolicyAttachment(
                f"{self._name}-{label}",
                aws.iam.RolePolicyAttachmentArgs(role=role.name, policy_arn=arn),
                opts=self._child,
            )
        aws.iam.RolePolicy(
            f"{self._name}-builder-artefacts",
            aws.iam.RolePolicyArgs(
                role=role.id, policy=bucket.arn.apply(lambda arn: json.dumps(read_artefacts_policy(arn)))
            ),
            opts=self._child,
        )
        return aws.iam.InstanceProfile(
            f"{self._name}-builder-profile", aws.iam.InstanceProfileArgs(role=role.name), opts=self._child
        )

    def _create_lifecycle_policy(self, config: StackConfig) -> aws.imagebuilder.LifecyclePolicy:
        """Every change bakes an AMI (and its snapshot): delete all but the last few, so they do not pile up."""
        role = aws.iam.Role(
            f"{self._name}-lifecycle-role",
            aws.iam.RoleArgs(
                assume_role_policy=json.dumps(iam.assume_role("imagebuilder.amazonaws.com")),
                description=f"celery-cluster {config.stack} Image Builder lifecycle policy",
            ),
            opts=self._child,
        )
        aws.iam.RolePolicyAttachment(
            f"{self._name}-lifecycle",
            aws.iam.RolePolicyAttachmentArgs(role=role.name, policy_arn=LIFECYCLE_EXECUTION_POLICY),
            opts=self._child,
        )
        return aws.imagebuilder.LifecyclePolicy(
            f"{self._name}-lifecycle",
            aws.imagebuilder.LifecyclePolicyArgs(
                name=f"celery-cluster-{config.stack}-worker-images",
                description=f"Keep the last {IMAGES_KEPT} worker images of celery-cluster {config.stack}",
                execution_role=role.arn,
                resource_type="AMI_IMAGE",
                resource_selection=aws.imagebuilder.LifecyclePolicyResourceSelectionArgs(
                    tag_map={"celery-cluster:stack": config.stack}
                ),
                policy_details=[
                    aws.imagebuilder.LifecyclePolicyPolicyDetailArgs(
                        action=aws.imagebuilder.LifecyclePolicyPolicyDetailActionArgs(
                            type="DELETE",
                            include_resources=aws.imagebuilder.LifecyclePolicyPolicyDetailActionIncludeResourcesArgs(
                                amis=True, snapshots=True
                            ),
                        ),
                        filter=aws.imagebuilder.LifecyclePolicyPolicyDetailFilterArgs(type="COUNT", value=IMAGES_KEPT),
                        exclusion_rules=aws.imagebuilder.LifecyclePolicyPolicyDetailExclusionRulesArgs(
                            amis=aws.imagebuilder.LifecyclePolicyPolicyDetailExclusionRulesAmisArgs(
                                last_launched=aws.imagebuilder.LifecyclePolicyPolicyDetailExclusionRulesAmisLastLaunchedArgs(
                                    unit="DAYS", value=KEEP_IF_LAUNCHED_DAYS
                                )
                            )
                        ),
                    )
                ],
                tags={"celery-cluster:stack": config.stack},
            ),
            opts=self._child,
        )

    def _create_image(
        self,
        args: WorkerImageArgs,
        arch: Arch,
        component: aws.imagebuilder.Component,
        profile: aws.iam.InstanceProfile,
        wheelhouse: aws.s3.BucketObjectv2,
        image_files: aws.s3.BucketObjectv2,
    ) -> pulumi.Output[str]:
        config = args.config
        tags = {"celery-cluster:stack": config.stack, "celery-cluster:arch": arch}
        parent = base_image_id(config, arch)
        digest = pulumi.Output.from_input(parent).apply(
            lambda ami: hashlib.sha256(f"{ami}\n{recipe_digest(args.artefacts, arch)}".encode()).hexdigest()[:12]
        )
        parameters = pulumi.Output.all(wheelhouse.bucket, wheelhouse.key, image_files.key).apply(
            lambda v: component_parameters(
                wheelhouse_uri=f"s3://{v[0]}/{v[1]}",
                wheelhouse_sha256=args.artefacts.wheelhouse(arch).sha256,
                image_files_uri=f"s3://{v[0]}/{v[2]}",
                image_files_sha256=args.artefacts.image_files.sha256,
            )
        )
        recipe = aws.imagebuilder.ImageRecipe(
            f"{self._name}-recipe-{arch}",
            aws.imagebuilder.ImageRecipeArgs(
                # The digest in the name: new artefacts, component or base AMI make a new recipe.
                name=digest.apply(lambda d: f"celery-cluster-{config.stack}-{arch}-{d}"),
                version="1.0.0",
                parent_image=parent,
                components=[
                    aws.imagebuilder.ImageRecipeComponentArgs(
                        component_arn=component.arn,
                        parameters=parameters.apply(
                            lambda values: [
                                aws.imagebuilder.ImageRecipeComponentParameterArgs(name=k, value=v)
                                for k, v in values.items()
                            ]
                        ),
                    )
                ],
                block_device_mappings=[
                    aws.imagebuilder.ImageRecipeBlockDeviceMappingArgs(
                        device_name=ROOT_DEVICE,
                        ebs=aws.imagebuilder.ImageRecipeBlockDeviceMappingEbsArgs(
                            encrypted="true", volume_type="gp3", volume_size=8, delete_on_termination="true"
                        ),
                    )
                ],
                tags=tags,
            ),
            opts=self._child,
        )
        infrastructure = aws.imagebuilder.InfrastructureConfiguration(
            f"{self._name}-infra-{arch}",
            aws.imagebuilder.InfrastructureConfigurationArgs(
                name=f"celery-cluster-{config.stack}-{arch}",
                description=f"celery-cluster {config.stack} {arch} image builds, in a private subnet",
                instance_profile_name=profile.name,
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
            opts=self._child,
        )
        distribution = aws.imagebuilder.DistributionConfiguration(
            f"{self._name}-distribution-{arch}",
            aws.imagebuilder.DistributionConfigurationArgs(
                name=f"celery-cluster-{config.stack}-{arch}",
                distributions=[
                    aws.imagebuilder.DistributionConfigurationDistributionArgs(
                        region=config.region,
                        ami_distribution_configuration=aws.imagebuilder.DistributionConfigurationDistributionAmiDistributionConfigurationArgs(
                            name=f"celery-cluster-{config.stack}-{arch}-{{{{ imagebuilder:buildDate }}}}",
                            description=f"celery-cluster {config.stack} worker ({arch})",
                            ami_tags=tags,
                        ),
                    )
                ],
                tags=tags,
            ),
            opts=self._child,
        )
        image = aws.imagebuilder.Image(
            f"{self._name}-{arch}",
            aws.imagebuilder.ImageArgs(
                image_recipe_arn=recipe.arn,
                infrastructure_configuration_arn=infrastructure.arn,
                distribution_configuration_arn=distribution.arn,
                image_tests_configuration=aws.imagebuilder.ImageImageTestsConfigurationArgs(
                    image_tests_enabled=True, timeout_minutes=BUILD_TIMEOUT_MINUTES
                ),
                enhanced_image_metadata_enabled=True,
                tags=tags,
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                custom_timeouts=pulumi.CustomTimeouts(create=f"{BUILD_TIMEOUT_MINUTES * 2}m"),
            ),
        )
        return image.output_resources.apply(_first_ami)
