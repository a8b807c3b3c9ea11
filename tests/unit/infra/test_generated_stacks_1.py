"""Generated stack configs, batch 1 of 2 (tests/support/generated_stacks.py says what is checked).

Two files of CONFIGS each, so that `make test`'s two processes (a file to a process) share the work:
a render takes about 0.6 s of CPU.
"""

from __future__ import annotations

import pytest

from tests.support.generated_stacks import check_batch

CONFIGS = 100


# 100 renders: about 60 s of CPU, under coverage and on shared cores over 300 s.
@pytest.mark.timeout(900)
def test_generated_configs_are_refused_or_render_within_every_rule_batch_1(capsys: pytest.CaptureFixture[str]) -> None:
    check_batch(CONFIGS, 1, capsys)
