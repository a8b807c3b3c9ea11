"""The worker image: the stack's artefact bucket and, in `bake` mode, EC2 Image Builder.

`image.mode` (config key `celery-cluster:imageMode`):
- `bake` (prod default): `make build`'s wheelhouse and image files go to the stack's own bucket
  (`infra.components.artefact_bucket`) under content-addressed keys; an Image Builder recipe per
  pool architecture, on the current Amazon Linux 2023 AMI, runs `image/imagebuilder/component.yaml`
  with their S3 URIs and sha256 as parameters (`infra.components.image_builder`). A changed wheel is
  a changed recipe (its name carries a digest of everything that goes in), so Pulumi builds a new
  image; its AMI id is the launch template's image, so the template gets a new version and the group
  an instance refresh, which drains each old worker. Old images: `infra.components.image_retention`.
- `boot` (dev): the same bucket and artefacts, no Image Builder; instances start from the stock
  AMI and user data installs the wheelhouse from the bucket (`infra.vm.user_data`).
- `ami`: bring your own AMI (`imageAmiId`); nothing is created here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_aws as aws

from infra.artefacts.manifest import BuildArtefacts
from infra.artefacts.targets import Arch
from infra.components.artefact_bucket import create_bucket, upload
from infra.components.image_builder import BakeArgs, create_builder_identity, create_component, create_image
from infra.components.image_retention import create_retention
from infra.config import StackConfig
from infra.vm.user_data import BootArtefacts

TYPE: Final = "celery-cluster:image:WorkerImage"


def base_image_id(config: StackConfig, arch: Arch) -> pulumi.Output[str]:
    """The current Amazon Linux 2023 AMI for `arch`, resolved at deploy time from its SSM parameter.

    A concrete id (not `resolve:ssm:`): a new base AMI changes the recipe, so the next `pulumi up`
    bakes on it and rolls the pools.
    """
    return aws.ssm.get_parameter_output(name=config.image_ssm_parameter.replace("{arch}", arch)).value


def _boot_artefacts(wheelhouse_sha256: str, image_files_sha256: str) -> Callable[[list[str]], BootArtefacts]:
    def make(values: list[str]) -> BootArtefacts:
        bucket, wheelhouse_key, image_files_key = values
        return BootArtefacts(bucket, wheelhouse_key, wheelhouse_sha256, image_files_key, image_files_sha256)

    return make


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
        child = pulumi.ResourceOptions(parent=self)
        config, artefacts = args.config, args.artefacts
        if config.image_mode == "ami":
            raise ValueError("WorkerImage is for imageMode bake or boot; ami needs no image resources")
        bucket = create_bucket(name, config.stack, child)
        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        image_files = upload(
            f"{name}-image-files", bucket, artefacts.image_files.key, artefacts.image_files.path, child
        )
        self.boot_artefacts = {}
        self.image_ids = {}
        uploads: dict[Arch, aws.s3.BucketObjectv2] = {}
        for arch in args.architectures:
            wheelhouse = artefacts.wheelhouse(arch)
            uploads[arch] = upload(f"{name}-wheelhouse-{arch}", bucket, wheelhouse.key, wheelhouse.path, child)
            self.boot_artefacts[arch] = pulumi.Output.all(bucket.bucket, uploads[arch].key, image_files.key).apply(
                _boot_artefacts(wheelhouse.sha256, artefacts.image_files.sha256)
            )
        if config.image_mode == "bake":
            component = create_component(name, config, child)
            identity = create_builder_identity(name, config, bucket.arn, child)
            for arch in args.architectures:
                bake = BakeArgs(
                    config=config,
                    arch=arch,
                    artefacts=artefacts,
                    parent_ami=base_image_id(config, arch),
                    component=component,
                    identity=identity,
                    wheelhouse=uploads[arch],
                    image_files=image_files,
                    subnet_id=args.subnet_id,
                    security_group_id=args.security_group_id,
                )
                self.image_ids[arch] = create_image(name, bake, child)
            create_retention(name, config.stack, args.architectures, child)
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
