"""Every alarm chooses what missing data means, and says why next to the choice; a queue with waiting
tasks and no age has an alarm of its own (a producer that cannot be measured never blinds a pool)."""

from __future__ import annotations

from pathlib import Path

from tests.support.rendered import Rendered
from worker.names import METRIC_QUEUES_WITHOUT_AGE

ROOT = Path(__file__).resolve().parents[3]
ALARM_SOURCES = ("pool_alarms.py", "broker_alarms.py", "pool_scaling.py")
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def test_every_rendered_alarm_sets_treat_missing_data(stack: Rendered) -> None:
    alarms = stack.named(ALARM)
    assert alarms
    unset = [name for name, inputs in alarms.items() if inputs.get("treatMissingData") is None]
    assert unset == []


def test_every_choice_has_a_why_comment_above_it() -> None:
    for name in ALARM_SOURCES:
        lines = (ROOT / "infra" / "components" / name).read_text().splitlines()
        for number, line in enumerate(lines):
            if "treat_missing_data=" in line:
                assert lines[number - 1].strip().startswith("#"), f"{name}:{number + 1}: say why above the choice"


def test_each_pool_alarms_on_a_waiting_queue_without_an_age(stack: Rendered) -> None:
    for pool in stack.config.pools:
        (alarm,) = [
            inputs
            for inputs in stack.named(ALARM).values()
            if inputs.get("metricName") == METRIC_QUEUES_WITHOUT_AGE and inputs["dimensions"] == {"Pool": pool}
        ]
        assert (alarm["threshold"], alarm["comparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
        assert alarm["alarmActions"], "it notifies on-call"
