"""The README's cost tables are what `infra.cli.cost_estimate` computes from the stacks' renders, and the
estimate follows the render: a resource more is its price more."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from infra.cli.cost_estimate import PRICES, estimate, per_month_metrics, total
from infra.cli.cost_table import BEGIN, END, tables
from infra.config import ROOT
from infra.scaling.warm_pool import HOURS_PER_MONTH
from tests.support.rendered import STACKS, Rendered, rendered
from worker import names

README = ROOT / "README.md"


def test_the_readme_cost_tables_are_computed_from_the_renders() -> None:
    text = README.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    expected = tables({s: (rendered(s).config, rendered(s).document) for s in STACKS})
    assert text[start:end] == expected, "run: python -m infra.cli.cost_table --write README.md"


def test_every_metric_the_writers_name_is_counted() -> None:
    """A metric added to worker.names without a line here would be a metric the tables do not pay for."""
    written = {
        value for key, value in vars(names).items() if key.startswith("METRIC_") and key != "METRIC_NAMESPACE_PREFIX"
    }
    assert set(per_month_metrics(rendered("prod").config, entries=1)) == written


def _with_one_more(document: dict[str, Any], type_: str) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    (resource,) = [r for r in changed["resources"] if r["type"] == type_][:1]
    changed["resources"].append(copy.deepcopy(resource))
    return changed


@pytest.mark.parametrize(
    ("type_", "monthly"),
    [
        ("aws:ec2/natGateway:NatGateway", HOURS_PER_MONTH * PRICES["nat_hour"].usd),
        ("aws:ec2/eip:Eip", HOURS_PER_MONTH * PRICES["ipv4_hour"].usd),
        ("aws:kms/key:Key", PRICES["kms_key_month"].usd),
        ("aws:cloudwatch/dashboard:Dashboard", PRICES["dashboard_month"].usd),
    ],
)
def test_the_estimate_follows_the_render(type_: str, monthly: float) -> None:
    dev: Rendered = rendered("dev")
    before = total(estimate(dev.config, dev.document))
    after = total(estimate(dev.config, _with_one_more(dev.document, type_)))
    assert after - before == pytest.approx(monthly, abs=0.011)


def test_a_larger_pool_base_costs_its_instance_hours() -> None:
    prod = rendered("prod")
    changed = copy.deepcopy(prod.document)
    (group,) = [r for r in changed["resources"] if r["name"] == "pool-default-asg"]
    group["inputs"]["minSize"] += 1  # above the on-demand base of 2: a Spot instance
    pool = prod.config.pools["default"]
    spot_hour = pool.hourly_usd["m7g.large"] * (1 - pool.spot.expected_discount)
    ebs = 20 * PRICES["gp3_gb_month"].usd
    delta = total(estimate(prod.config, changed)) - total(estimate(prod.config, prod.document))
    assert delta == pytest.approx(HOURS_PER_MONTH * spot_hour + ebs, abs=0.02)


def test_every_price_cites_an_aws_pricing_page() -> None:
    for name, price in PRICES.items():
        assert re.fullmatch(r"https://aws\.amazon\.com/[a-z0-9/-]+/pricing/(on-demand/)?", price.source), name
