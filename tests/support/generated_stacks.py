"""Any config the validator accepts deploys: a generated stack config (tests/support/stack_configs.py) is
either refused by the validator, one line per problem naming the key, or rendered and then within every
AWS rule the three stacks are held to: the rules of tests/unit/infra/test_aws_rules_*.py (and of the
security baseline and missing-data tests), botocore's service models for every request, and the limits
that span fields or resources (tests/support/aws_limits/, each with its source).

`check_generated` decides one config; `run_generated` draws and checks a batch with Hypothesis, the same
configs on every run (a fixed seed per batch), and shrinks a failure to the smallest config showing it;
`check_batch` is the test of one batch file.
"""

from __future__ import annotations

import inspect
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings

from infra.cli.offline_render import render_config
from infra.config import ConfigError, parse_engine_config, to_pulumi_config
from tests.support.aws_limits import check_all
from tests.support.aws_requests import requests_of, validate
from tests.support.rendered import Rendered
from tests.support.stack_configs import stack_configs
from tests.unit.infra import (
    test_alarm_missing_data,
    test_aws_rules_iam,
    test_aws_rules_images,
    test_aws_rules_lambda,
    test_aws_rules_metric_periods,
    test_aws_rules_pools,
    test_aws_rules_s3,
    test_security_baseline,
    test_smoke_rules,
)

KEYED_LINE = re.compile(r"^invalid config for stack '[^']*': (celery-cluster:\S+|aws:region|stack name)")
RULE_MODULES = (
    test_aws_rules_iam,
    test_aws_rules_images,
    test_aws_rules_pools,
    test_aws_rules_metric_periods,
    test_aws_rules_lambda,
    test_aws_rules_s3,
    test_security_baseline,
    test_alarm_missing_data,
    test_smoke_rules,
)


def stack_rules() -> list[Callable[[Rendered], None]]:
    """Every rule test of RULE_MODULES that takes one rendered stack."""
    found = []
    for module in RULE_MODULES:
        for name, function in sorted(vars(module).items()):
            if name.startswith("test_") and list(inspect.signature(function).parameters) == ["stack"]:
                found.append(function)
    return found


def rule_failures(stack: Rendered) -> list[str]:
    failures = []
    for rule in stack_rules():
        try:
            rule(stack)
        except pytest.skip.Exception:
            continue
        except AssertionError as exc:
            failures.append(f"{rule.__name__}: {str(exc).splitlines()[0] if str(exc) else 'failed'}")
    for request in requests_of(stack.document["resources"]):
        failures += [f"{request.resource} -> {request.operation}: {error}" for error in validate(request)]
    return failures + check_all(stack.document["resources"])


def check_generated(stack_name: str, values: dict[str, Any]) -> str:
    """ "rendered", or "refused: <key>" (the first key it names); raises AssertionError naming every broken rule."""
    try:
        config = parse_engine_config(stack_name, to_pulumi_config(values))
    except ConfigError as exc:
        lines = str(exc).splitlines()
        unkeyed = [line for line in lines if not KEYED_LINE.match(line)]
        assert not unkeyed, f"refusal lines that name no key: {unkeyed}"
        match = KEYED_LINE.match(lines[0])
        assert match is not None
        return "refused: " + match.group(1).removeprefix("celery-cluster:").rstrip(":").split(".")[0]
    stack = Rendered(config, render_config(config, values))
    failures = rule_failures(stack)
    assert not failures, "accepted, but AWS would not take it:\n" + "\n".join(failures)
    return "rendered"


def run_generated(count: int, batch: int) -> Counter[str]:
    """Draw `count` configs (the same ones for the same `batch`) and check each; the outcomes."""
    outcomes: Counter[str] = Counter()

    @seed(batch)
    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(stack_configs())
    def check(drawn: tuple[str, dict[str, Any]]) -> None:
        outcomes[check_generated(*drawn)] += 1

    check()
    return outcomes


def check_batch(count: int, batch: int, capsys: pytest.CaptureFixture[str]) -> None:
    """Draw and check batch `batch` of `count` configs, print its outcomes past pytest's capture (the CPU
    time is what the two batch files are sized by), and require most of them to be accepted."""
    started = time.process_time()
    outcomes = run_generated(count, batch)
    with capsys.disabled():
        cpu = time.process_time() - started
        print(f"\nbatch {batch}: {sum(outcomes.values())} configs, {cpu:.0f} s CPU: {dict(outcomes)}")
    assert sum(outcomes.values()) == count
    assert outcomes["rendered"] >= count // 2, (
        f"most generated configs should be ones the validator accepts: {dict(outcomes)}"
    )
