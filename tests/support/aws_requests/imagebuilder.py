"""EC2 Image Builder: components, recipes, infrastructure and distribution configurations, images and
lifecycle policies. Its API's members are camelCase, named as the render's inputs are."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tests.support.aws_requests.members import Builder, Call, ebs_volume, optional, required

CLIENT_TOKEN = "render-client-token"  # every create request carries an idempotency token


def _create(operation: str, i: Mapping[str, Any], params: dict[str, Any]) -> Iterator[Call]:
    """One create request: `params`, the resource's tags and the client token every create takes."""
    yield ("imagebuilder", operation, {**params, **optional(i, "tags"), "clientToken": CLIENT_TOKEN})


def _component(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    return _create(
        "CreateComponent",
        i,
        {
            **required(i, "name", "platform"),
            "semanticVersion": i["version"],
            **optional(i, "description", "changeDescription", "supportedOsVersions", "data"),
        },
    )


def _recipe(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    return _create(
        "CreateImageRecipe",
        i,
        {
            **required(i, "name", "parentImage"),
            "semanticVersion": i["version"],
            **optional(i, "description", "workingDirectory"),
            "components": [
                {
                    **required(c, "componentArn"),
                    "parameters": [{"name": p["name"], "value": [p["value"]]} for p in c.get("parameters", [])] or None,
                }
                for c in i["components"]
            ],
            "blockDeviceMappings": [
                {
                    **optional(b, "deviceName"),
                    "ebs": {k[:1].lower() + k[1:]: v for k, v in ebs_volume(b["ebs"]).items()},
                }
                for b in i.get("blockDeviceMappings", [])
            ]
            or None,
        },
    )


def _infrastructure(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    return _create(
        "CreateInfrastructureConfiguration",
        i,
        {
            **required(i, "name", "instanceProfileName"),
            **optional(
                i,
                "description",
                "instanceTypes",
                "securityGroupIds",
                "subnetId",
                "terminateInstanceOnFailure",
                "instanceMetadataOptions",
                "resourceTags",
            ),
        },
    )


def _distribution(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    return _create(
        "CreateDistributionConfiguration", i, {**required(i, "name", "distributions"), **optional(i, "description")}
    )


def _image(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    return _create(
        "CreateImage",
        i,
        {
            **required(i, "infrastructureConfigurationArn"),
            **optional(
                i,
                "imageRecipeArn",
                "distributionConfigurationArn",
                "imageTestsConfiguration",
                "enhancedImageMetadataEnabled",
                "executionRole",
            ),
        },
    )


def _lifecycle_policy(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    return _create(
        "CreateLifecyclePolicy",
        i,
        {
            **required(i, "name", "executionRole", "resourceType", "policyDetails", "resourceSelection"),
            **optional(i, "description", "status"),
        },
    )


BUILDERS: dict[str, Builder] = {
    "aws:imagebuilder/component:Component": _component,
    "aws:imagebuilder/imageRecipe:ImageRecipe": _recipe,
    "aws:imagebuilder/infrastructureConfiguration:InfrastructureConfiguration": _infrastructure,
    "aws:imagebuilder/distributionConfiguration:DistributionConfiguration": _distribution,
    "aws:imagebuilder/image:Image": _image,
    "aws:imagebuilder/lifecyclePolicy:LifecyclePolicy": _lifecycle_policy,
}
