"""How many baked images a stack keeps: the newest few per architecture, older AMIs and snapshots deleted.

Every bake replaces the stack's `aws.imagebuilder.Image`; the old one is kept (retain_on_delete, see
`infra.components.image_builder`) so that this lifecycle policy sees it. One policy per architecture,
selecting by the `celery-cluster:image` tag that only that architecture's images carry, so "the last
N" is N of each architecture, not N shared between them.

- Delete rule by count, with the AMIs deregistered and their snapshots deleted ("You can optionally
  deregister associated AMIs or delete the snapshots for those AMIs",
  https://docs.aws.amazon.com/imagebuilder/latest/userguide/image-lifecycle-rules.html).
- COUNT: "the minimum number of resources to keep on hand"
  (https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-imagebuilder-lifecyclepolicy-filter.html).
- An AMI that launched an instance in the last week is kept whatever its rank (a running pool's image).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import pulumi
import pulumi_aws as aws

from infra.artefacts.targets import Arch
from infra.components.image_builder import image_tags
from infra.components.roles import attach_managed, service_role

LIFECYCLE_EXECUTION_POLICY: Final = "arn:aws:iam::aws:policy/service-role/EC2ImageBuilderLifecycleExecutionPolicy"
IMAGES_KEPT: Final = 3
"""Images kept per architecture: the current one and two to roll back to (a launch template's earlier versions)."""
KEEP_IF_LAUNCHED_DAYS: Final = 7


def create_retention(
    name: str, stack: str, architectures: Sequence[Arch], opts: pulumi.ResourceOptions
) -> list[aws.imagebuilder.LifecyclePolicy]:
    role = service_role(
        f"{name}-lifecycle-role",
        "imagebuilder.amazonaws.com",
        f"celery-cluster {stack} Image Builder lifecycle policy",
        opts,
    )
    grant = attach_managed(f"{name}-lifecycle", role, LIFECYCLE_EXECUTION_POLICY, opts)
    policies = []
    for arch in architectures:
        selector = "celery-cluster:image"
        policies.append(
            aws.imagebuilder.LifecyclePolicy(
                f"{name}-lifecycle-{arch}",
                aws.imagebuilder.LifecyclePolicyArgs(
                    name=f"celery-cluster-{stack}-worker-images-{arch}",
                    description=f"Keep the last {IMAGES_KEPT} {arch} worker images of celery-cluster {stack}",
                    execution_role=role.arn,
                    resource_type="AMI_IMAGE",
                    resource_selection=aws.imagebuilder.LifecyclePolicyResourceSelectionArgs(
                        tag_map={selector: image_tags(stack, arch)[selector]}
                    ),
                    policy_details=[
                        aws.imagebuilder.LifecyclePolicyPolicyDetailArgs(
                            action=aws.imagebuilder.LifecyclePolicyPolicyDetailActionArgs(
                                type="DELETE",
                                include_resources=aws.imagebuilder.LifecyclePolicyPolicyDetailActionIncludeResourcesArgs(
                                    amis=True, snapshots=True
                                ),
                            ),
                            filter=aws.imagebuilder.LifecyclePolicyPolicyDetailFilterArgs(
                                type="COUNT", value=IMAGES_KEPT
                            ),
                            exclusion_rules=aws.imagebuilder.LifecyclePolicyPolicyDetailExclusionRulesArgs(
                                amis=aws.imagebuilder.LifecyclePolicyPolicyDetailExclusionRulesAmisArgs(
                                    last_launched=aws.imagebuilder.LifecyclePolicyPolicyDetailExclusionRulesAmisLastLaunchedArgs(
                                        unit="DAYS", value=KEEP_IF_LAUNCHED_DAYS
                                    )
                                )
                            ),
                        )
                    ],
                    tags={"celery-cluster:stack": stack},
                ),
                # The role must hold its permissions before the policy's first run.
                opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[grant])),
            )
        )
    return policies
