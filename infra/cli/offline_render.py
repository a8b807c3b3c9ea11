"""Run the Pulumi program offline under the SDK's mocks and capture what the engine would receive.

`render_stack(stack)` loads the real stack config (Pulumi.yaml defaults + Pulumi.<stack>.yaml),
hands it to the program as engine config, and records every resource registration: type, name,
parent and inputs exactly as serialised for the engine (camelCase keys), with secret values
replaced by `[secret]` and unknown values by `[unknown]`. Outputs are recorded the same way.

The mock "cloud" answers with the inputs plus the few computed attributes the program reads
(ids, ARNs, names, endpoints), shaped like AWS's so that derived strings look real.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import json_format  # type: ignore[import-untyped]
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.config import set_all_config
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra.config import (
    PROJECT,
    ROOT,
    StackConfig,
    config_from_pulumi,
    load_stack_config,
    read_stack_file,
    to_pulumi_config,
)
from infra.program import build, publisher_code, worker_artefacts

SECRET = "[secret]"  # noqa: S105 - the mask, not a secret
UNKNOWN = "[unknown]"
ACCOUNT = "123456789012"
RENDER_DIR = ROOT / "build" / "render"


@dataclass
class Resource:
    type: str
    name: str
    parent: str | None
    inputs: dict[str, Any]
    urn: str
    dependencies: list[str] = field(default_factory=list)
    """Names of the resources this one waits for (inputs and `depends_on`), as the engine orders them."""
    retain_on_delete: bool = False
    ignore_changes: list[str] = field(default_factory=list)
    """Property paths the engine keeps from the state on update (the resource option)."""

    def as_json(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "parent": self.parent, "inputs": self.inputs}


@dataclass
class Render:
    stack: str
    resources: list[Resource] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    invokes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            # The engine registers resources in the order their inputs resolve, which varies from run
            # to run; sorted, two renders of the same program are the same file and diff cleanly.
            "resources": [r.as_json() for r in sorted(self.resources, key=lambda r: (r.type, r.name))],
            "outputs": self.outputs,
        }

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]


def _plain(value: Any) -> Any:
    """Engine wire format -> JSON, with secrets and unknowns masked."""
    if isinstance(value, dict):
        return _plain_object(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if value == rpc.UNKNOWN:
        return UNKNOWN
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _plain_object(value: dict[str, Any]) -> Any:
    signature = value.get(rpc._special_sig_key)
    if signature == rpc._special_secret_sig:
        return SECRET
    if signature == rpc._special_resource_sig:
        return value.get("urn")
    if signature in (rpc._special_asset_sig, rpc._special_archive_sig):
        return _plain_asset(value, "asset" if signature == rpc._special_asset_sig else "archive")
    return {k: _plain(v) for k, v in sorted(value.items())}


def _plain_asset(value: dict[str, Any], kind: str) -> dict[str, Any]:
    """{kind: path} for a file, {kind: uri} for a remote one, {kind: {"text": ...}} for a string asset,
    {kind: {name: asset}} for an asset archive: what identifies the content, so a new content diffs."""
    if "text" in value:
        return {kind: {"text": value["text"]}}
    if "assets" in value:
        return {kind: {name: _plain(asset) for name, asset in sorted(value["assets"].items())}}
    path = value.get("path")
    if isinstance(path, str) and path.startswith(f"{ROOT}/"):
        path = path.removeprefix(f"{ROOT}/")  # machine-independent, so renders diff cleanly
    return {kind: path or value.get("uri")}


def _arn(type_: str, name: str) -> str:
    module = type_.split(":")[1] if type_.count(":") >= 1 else ""
    service = module.split("/", maxsplit=1)[0]
    return f"arn:aws:{service}:us-east-1:{ACCOUNT}:{service}/{name}"


IAM_ARN_KIND = {
    "aws:iam/role:Role": "role",
    "aws:iam/instanceProfile:InstanceProfile": "instance-profile",
    "aws:iam/policy:Policy": "policy",
}
IMAGEBUILDER_ARN_KIND = {
    "aws:imagebuilder/infrastructureConfiguration:InfrastructureConfiguration": "infrastructure-configuration",
    "aws:imagebuilder/distributionConfiguration:DistributionConfiguration": "distribution-configuration",
    "aws:imagebuilder/lifecyclePolicy:LifecyclePolicy": "lifecycle-policy",
}


def _computed(type_: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Attributes AWS computes that the program reads back."""
    state: dict[str, Any] = {"arn": _arn(type_, name), "name": inputs.get("name", name)}
    if type_ == "aws:ec2/launchTemplate:LaunchTemplate":
        state["latestVersion"] = 1
    elif type_ == "aws:elasticache/replicationGroup:ReplicationGroup":
        state["primaryEndpointAddress"] = f"master.{name}.abc123.use1.cache.amazonaws.com"
    elif type_ == "aws:mq/broker:Broker":
        state["brokerName"] = inputs.get("brokerName", name)
        state["instances"] = [
            {
                "consoleUrl": f"https://b-{name}.mq.us-east-1.amazonaws.com",
                "endpoints": [f"amqps://b-{name}.mq.us-east-1.amazonaws.com:5671"],
            }
        ]
    elif type_ == "aws:s3/bucket:Bucket":
        # AWS completes a bucket_prefix with a unique suffix.
        state["bucket"] = inputs.get("bucket") or f"{inputs.get('bucketPrefix', name + '-')}20261124mock"
        state["arn"] = f"arn:aws:s3:::{state['bucket']}"
    elif type_ in IAM_ARN_KIND:
        # IAM ARNs carry the path and the name, and no region: role/<path><name>.
        path = inputs.get("path") or "/"
        state["arn"] = f"arn:aws:iam::{ACCOUNT}:{IAM_ARN_KIND[type_]}{path}{state['name']}"
    elif type_ in IMAGEBUILDER_ARN_KIND:
        kind = IMAGEBUILDER_ARN_KIND[type_]
        state["arn"] = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:{kind}/{str(state['name']).lower()}"
    elif type_ in ("aws:imagebuilder/imageRecipe:ImageRecipe", "aws:imagebuilder/component:Component"):
        # Image Builder ARNs carry the resource's own name and version, as AWS's do.
        kind = "image-recipe" if "imageRecipe" in type_ else "component"
        state["arn"] = f"arn:aws:imagebuilder:us-east-1:{ACCOUNT}:{kind}/{inputs.get('name')}/{inputs.get('version')}"
    elif type_ == "aws:imagebuilder/image:Image":
        # A build's AMI follows from its recipe: a new recipe (new wheel) gives a new AMI, as in AWS.
        ami = "ami-" + hashlib.sha256(str(inputs.get("imageRecipeArn")).encode()).hexdigest()[:17]
        state["outputResources"] = [{"amis": [{"image": ami, "region": "us-east-1", "name": name}]}]
    elif type_ == "aws:sqs/queue:Queue":
        # SQS ARNs and URLs carry the queue's name, no resource kind
        # (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-queue-message-identifiers.html).
        state["arn"] = f"arn:aws:sqs:us-east-1:{ACCOUNT}:{state['name']}"
        state["url"] = f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/{state['name']}"
    elif type_ == "aws:kms/key:Key":
        state["keyId"] = f"{name}-key-id"
    elif type_ == "random:index/randomPassword:RandomPassword":
        state["result"] = f"mock-{name}-0123456789abcdef"
    return state


class _Mocks(pulumi_mocks.Mocks):
    def __init__(self, render: Render) -> None:
        self._render = render

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        return f"{args.name}-id", {**args.inputs, **_computed(args.typ, args.name, args.inputs)}

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self._render.invokes.append(args.token)
        answers: dict[str, dict[str, Any]] = {
            "aws:index/getCallerIdentity:getCallerIdentity": {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/render",
                "userId": "render",
            },
            "aws:index/getPartition:getPartition": {"partition": "aws", "dnsSuffix": "amazonaws.com"},
            "aws:ssm/getParameter:getParameter": {
                "name": args.args.get("name"),
                "value": "ami-0123456789abcdef0",
                "type": "String",
            },
        }
        return answers.get(args.token, {}), []


class _RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, also keeping each registration's wire-format inputs."""

    def __init__(self, mocks: _Mocks, render: Render) -> None:
        super().__init__(mocks)
        self._render = render
        self._names: dict[str, str] = {}

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        self._mark_secret_outputs(request.additionalSecretOutputs, response.object)
        if request.type != "pulumi:pulumi:Stack":
            wire = json_format.MessageToDict(request.object)
            parent = self._names.get(request.parent) if request.parent else None
            self._names[response.urn] = request.name
            self._render.resources.append(
                Resource(
                    type=request.type,
                    name=request.name,
                    parent=parent,
                    inputs=_plain(wire),
                    urn=response.urn,
                    dependencies=sorted(self._names.get(urn, urn) for urn in request.dependencies),
                    retain_on_delete=bool(request.retainOnDelete),
                    ignore_changes=list(request.ignoreChanges),
                )
            )
        return response

    @staticmethod
    def _mark_secret_outputs(names: Any, state: Any) -> None:
        # The engine, not the SDK, marks a provider's secret outputs (e.g. RandomPassword.result) as
        # secret; the SDK's mock monitor skips that, so do it here or the render would leak them.
        values = json_format.MessageToDict(state)
        for name in names:
            if name in values:
                values[name] = {rpc._special_sig_key: rpc._special_secret_sig, "value": values[name]}
        state.Clear()
        state.update(values)


async def _resolve(value: pulumi.Output[Any]) -> Any:
    if await value.is_secret():
        return SECRET
    if not await value.is_known():
        return UNKNOWN
    return await value.future()


def install_mocks(stack: str, stack_values: Mapping[str, Any]) -> Render:
    """Point the Pulumi runtime at the recording mocks, with `stack_values` as the engine config."""
    render = Render(stack=stack)
    mocks = _Mocks(render)
    pulumi_mocks.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=_RecordingMonitor(mocks, render))
    set_all_config(to_pulumi_config(stack_values))
    return render


def render_config(config: StackConfig, stack_values: Mapping[str, Any]) -> Render:
    """Run the program for `config` under mocks; `stack_values` become the engine config."""
    render = install_mocks(config.stack, stack_values)

    async def program() -> None:
        # The program reads its config through pulumi.Config, as under `pulumi up`; it must agree
        # with the offline loader that the simulator and the tests use.
        from_engine = config_from_pulumi()
        if from_engine != config:
            raise RuntimeError(f"config read through pulumi.Config differs from {config.stack}'s offline config")
        stack_outputs = build(
            from_engine,
            publisher_code(from_engine, placeholder=True),
            worker_artefacts(from_engine, placeholder=True),
        )
        for name, output in stack_outputs.items():
            render.outputs[name] = await _resolve(output)

    with warnings.catch_warnings():
        # pulumi-aws warns about its own deprecated modules as it loads them: noise, not ours to fix.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"pulumi_aws(\.|$)")
        _sync_await(run_pulumi_func(lambda: _sync_await(program())))
    return render


def render_stack(stack: str, root: Path = ROOT) -> Render:
    """Render a stack from its Pulumi.<stack>.yaml."""
    values = read_stack_file(stack, root)
    return render_config(load_stack_config(stack, root), values)


def write_render(render: Render, directory: Path = RENDER_DIR) -> Path:
    """Write build/render/<stack>.json atomically (a partial file never replaces a good one)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{render.stack}.json"
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(render.as_json(), indent=2, sort_keys=False) + "\n")
    partial.replace(path)
    return path
