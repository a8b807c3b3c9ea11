"""Amazon MQ: the RabbitMQ broker."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tests.support.aws_requests.members import Builder, Call, name_of, optional, pascal, plain, required


def _broker(name: str, i: Mapping[str, Any]) -> Iterator[Call]:
    logs = i.get("logs")
    yield (
        "mq",
        "CreateBroker",
        {
            "BrokerName": name_of(i, name, "brokerName"),
            # The provider validates engine_type ignoring case and sends it as given (terraform-provider-aws
            # internal/service/mq/broker.go, enum.ValidateIgnoreCase); its docs spell it RabbitMQ. The model's
            # enum is upper case: named assumption, the API compares it ignoring case as the provider does.
            "EngineType": str(i["engineType"]).upper(),
            **required(i, "HostInstanceType", "DeploymentMode"),
            **optional(
                i,
                "EngineVersion",
                "AutoMinorVersionUpgrade",
                "SubnetIds",
                "SecurityGroups",
                "AuthenticationStrategy",
                "Tags",
            ),
            "PubliclyAccessible": i.get("publiclyAccessible", False),
            "Users": [
                {**required(u, "Username"), "Password": plain(u["password"]), **optional(u, "ConsoleAccess")}
                for u in i.get("users", [])
            ],
            "Logs": optional(logs, "General", "Audit") if logs else None,
            "EncryptionOptions": pascal(i.get("encryptionOptions")),
            "MaintenanceWindowStartTime": pascal(i.get("maintenanceWindowStartTime")),
        },
    )


BUILDERS: dict[str, Builder] = {"aws:mq/broker:Broker": _broker}
