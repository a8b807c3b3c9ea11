"""Sizes AWS caps that grow with the config, measured before any resource exists.

- Lambda holds at most 4 KB of environment variables per function, all of them together
  (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html). The publisher's and the
  smoke function's POOLS_JSON grows with the pools and their queues; their other variables (namespace,
  sample settings, the secret's ARN, the queue type) take at most LAMBDA_OTHER_BYTES.
- EC2 takes at most 16 KB of user data before base64
  (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-add-user-data.html). An instance's
  environment file in it grows with the pool's queues, its worker settings and the task routes; the rest
  of the user data takes at most USER_DATA_OTHER_BYTES.

The two "other" budgets are measured with the longest names, ARNs and artefact keys there can be by
tests/unit/infra/test_config_sizes.py, and the generated configs' renders check the totals
(tests/unit/infra/test_generated_stacks.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

from infra.config.pool import PoolConfig
from worker.instance.fetchenv import quote
from worker.publisher.handler import PoolQueues, pools_json

LAMBDA_ENVIRONMENT_BYTES: Final = 4096
LAMBDA_OTHER_BYTES: Final = 512
USER_DATA_BYTES: Final = 16 * 1024
USER_DATA_OTHER_BYTES: Final = 5 * 1024

AUTONAME_SUFFIX: Final = "-0000000"
"""What Pulumi appends to an auto-named resource's logical name: "-" and 7 hex digits."""


def asg_name(pool: str) -> str:
    """The longest name a pool's group gets: the program's logical name with Pulumi's suffix."""
    return f"pool-{pool}-asg{AUTONAME_SUFFIX}"


def pools_json_bytes(pools: Mapping[str, PoolConfig]) -> int:
    """POOLS_JSON of the publisher and the smoke function, with the groups' longest names."""
    document = pools_json(
        [
            PoolQueues(name=name, queues=pool.queues, asg=asg_name(name), signal=pool.scaling(name).signal)
            for name, pool in sorted(pools.items())
        ]
    )
    return len(document.encode())


def environment_file_bytes(variables: Mapping[str, str]) -> int:
    """What these variables add to user data: environment-file lines (worker.instance.fetchenv.quote),
    embedded as one JSON string in the cloud-config (infra.vm.user_data)."""
    lines = "".join(quote(name, value) + "\n" for name, value in variables.items())
    return len(json.dumps(lines).encode()) - 2  # without the string's own quotes
