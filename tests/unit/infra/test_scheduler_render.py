"""The scheduler in the rendered stacks: one instance, its alarms, its lease, and the pools scaled
ahead of the periodic entries that declare their work."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml

from infra.cli.offline_render import Render, render_config
from infra.components.scheduler import TYPE, lease_table_name
from infra.config import ConfigError, StackConfig, merged_raw, parse_config, read_stack_file
from infra.config.periodic_capacity import capacity_for, check_tasks, derived_schedules
from infra.vm.files import POOL_ENV
from infra.vm.scheduler_data import SCHEDULER_ENV, SCHEDULER_UNIT
from tests.support.rendered import Rendered
from tests.support.units import systemd_unquote
from worker.names import METRIC_ENTRY_LATENESS, METRIC_SCHEDULER_HEARTBEAT
from worker.scheduler.periodic import Periodic
from worker.scheduler.schedule import ENTRIES

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
SCHEDULE = "aws:autoscaling/schedule:Schedule"


def _user_data(template: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(base64.b64decode(template["userData"]).decode())
    return document


def _environment_file(template: dict[str, Any], path: str) -> dict[str, str]:
    (content,) = [f["content"] for f in _user_data(template)["write_files"] if f["path"] == path]
    return dict(systemd_unquote(line) for line in content.splitlines() if line and not line.startswith("#"))


def test_prod_has_one_scheduler_instance_with_its_alarms(prod: Rendered) -> None:
    assert [r["name"] for r in prod.document["resources"] if r["type"] == TYPE] == ["scheduler"]
    group = prod.one("aws:autoscaling/group:Group", "scheduler-asg")
    assert (group["minSize"], group["maxSize"], group["desiredCapacity"]) == (1, 1, 1)
    assert group["instanceRefresh"]["preferences"]["minHealthyPercentage"] == 0  # stop before start
    alarms = prod.named(ALARM)
    holder = alarms["scheduler-no-holder"]
    assert holder["metricName"] == METRIC_SCHEDULER_HEARTBEAT
    assert holder["period"] == 2 * prod.config.scheduler_lease_seconds
    assert holder["treatMissingData"] == "breaching"
    prod_entries = [e for e in ENTRIES if e.runs_on("prod")]
    for entry in prod_entries:
        late = alarms[f"scheduler-periodic-{entry.name}-late"]
        assert late["metricName"] == METRIC_ENTRY_LATENESS
        assert late["dimensions"] == {"Entry": entry.name}
        assert late["alarmActions"], "an alarm nobody hears"


def test_the_scheduler_instance_runs_the_scheduler_unit_not_the_worker(prod: Rendered) -> None:
    template = prod.one("aws:ec2/launchTemplate:LaunchTemplate", "scheduler-lt")
    document = _user_data(template)
    assert ["systemctl", "enable", "--now", SCHEDULER_UNIT] in document["runcmd"]
    env = _environment_file(template, SCHEDULER_ENV)
    assert env["SCHEDULER_QUEUES"] == "default,reports"
    assert env["SCHEDULER_LEASE_SECONDS"] == str(prod.config.scheduler_lease_seconds)
    assert "SCHEDULER_LEASE_URL" not in env  # Valkey: the lease lives in the broker
    assert "CELERY_BROKER_URL" not in json.dumps(document)


def test_prod_scales_the_default_pool_ahead_of_the_fan_out(prod: Rendered) -> None:
    (entry,) = [e for e in ENTRIES if e.name == "fan-out"]
    pool = prod.config.pools["default"]
    instances, hold = capacity_for(entry, pool)
    # 1,000 two-second tasks within a 30 s SLO on 4 processes an instance: 17 instances.
    assert instances == 17
    actions = prod.named(SCHEDULE)
    start, end = actions["pool-default-periodic-fan-out-start"], actions["pool-default-periodic-fan-out-end"]
    assert start["recurrence"] == "10,25,40,55 * * * *"  # five minutes before */15
    assert start["minSize"] == instances
    assert end["minSize"] == pool.min_size
    # Held from the 5-minute lead through the fan-out's run (30 s, the SLO, on 17 instances), in whole minutes.
    assert hold == 360


def _rabbit_dev() -> StackConfig:
    return parse_config("dev", merged_raw({**read_stack_file("dev"), "brokerEngine": "rabbitmq"}))


def test_rabbitmq_stacks_keep_the_lease_in_dynamodb() -> None:
    config = _rabbit_dev()
    render: Render = render_config(config, {**read_stack_file("dev"), "brokerEngine": "rabbitmq"})
    (table,) = [r.inputs for r in render.of_type("aws:dynamodb/table:Table")]
    assert table["name"] == lease_table_name(config)
    assert table["ttl"] == {"attributeName": "purge_at", "enabled": True}  # the fence's items expire
    (template,) = [
        r.inputs for r in render.of_type("aws:ec2/launchTemplate:LaunchTemplate") if r.name == "scheduler-lt"
    ]
    assert f"SCHEDULER_LEASE_URL=dynamodb://{lease_table_name(config)}" in json.dumps(_user_data(template))
    # Reachable from the private subnets without the NAT (and with egress: endpoints).
    endpoints = [r.inputs for r in render.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")]
    assert [e["vpcEndpointType"] for e in endpoints if e["serviceName"].endswith(".dynamodb")] == ["Gateway"]


def test_rabbitmq_workers_fence_periodic_runs_in_the_schedulers_table() -> None:
    # Without it a run the scheduler sent twice (a paused holder) would run twice on RabbitMQ.
    config = _rabbit_dev()
    render: Render = render_config(config, {**read_stack_file("dev"), "brokerEngine": "rabbitmq"})
    for name in config.pools:
        (template,) = [
            r.inputs for r in render.of_type("aws:ec2/launchTemplate:LaunchTemplate") if r.name == f"pool-{name}-lt"
        ]
        env = _environment_file(template, POOL_ENV)
        assert env["CELERY_PERIODIC_FENCE_URL"] == f"dynamodb://{lease_table_name(config)}"
        (policy,) = [
            json.loads(r.inputs["policy"])
            for r in render.of_type("aws:iam/rolePolicy:RolePolicy")
            if r.name == f"pool-{name}-fence"
        ]
        (statement,) = policy["Statement"]
        assert statement["Action"] == ["dynamodb:PutItem"]
        assert statement["Resource"].endswith(f":table/{lease_table_name(config)}")
        assert statement["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["started#*"]}}
    assert parse_config("dev", merged_raw(read_stack_file("dev"))).fence_environment() == {}  # Redis: the broker


def test_no_scheduler_when_disabled() -> None:
    values = {**read_stack_file("dev"), "schedulerEnabled": False}
    render = render_config(parse_config("dev", merged_raw(values)), values)
    assert not [r for r in render.resources if r.type == TYPE]


def test_an_entry_routed_to_a_queue_no_pool_consumes_stops_the_config() -> None:
    config = parse_config("dev", merged_raw(read_stack_file("dev")))
    with pytest.raises(ConfigError, match="periodic entry 'stray': its runs go to queue 'reports', which no pool"):
        derived_schedules(config, [Periodic("stray", "reports.build", 3600, queue="reports")])
    with pytest.raises(ConfigError, match="periodic entry 'early': lead_seconds 900 is not shorter"):
        derived_schedules(config, [Periodic("early", "cluster.ping", 900, expect_tasks=10, lead_seconds=900)])


def test_an_entry_for_a_task_worker_app_does_not_register_stops_the_render() -> None:
    check_tasks("dev", ENTRIES)  # the project's own entries pass
    with pytest.raises(ConfigError) as raised:
        check_tasks("dev", [Periodic("typo", "cluster.canry", 60)])
    assert str(raised.value) == (
        "invalid config for stack 'dev': periodic entry 'typo': task 'cluster.canry' is not registered by worker.app"
    )
