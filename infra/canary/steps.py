"""How EC2 Auto Scaling paces an instance refresh (Rolling), as the local twin replays it: batch sizes from
the minimum healthy percentage, and checkpoints. Pure functions; each rule cites its source.
"""

from __future__ import annotations

import math


def batch_size(desired: int, min_healthy_percent: int) -> int:
    """Instances replaced at once: what keeps MinHealthyPercentage of the desired capacity ("rounded up to the
    nearest integer") in service, at least one ("Setting the minimum healthy percentage to 100 percent limits
    the rate of replacement to one instance at a time"). The Rolling strategy "terminates instances and
    launches new ones in batches" (MaxHealthyPercentage left at its 100: no launch before a termination).
    https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_RefreshPreferences.html,
    https://docs.aws.amazon.com/autoscaling/ec2/userguide/instance-refresh-overview.html"""
    keep = math.ceil(desired * min_healthy_percent / 100)
    return max(desired - keep, 1)


def needed_for(checkpoint_percent: int, total: int) -> int:
    """New instances that reach a checkpoint: checkpoints "indicate the minimum percentage of instances in the
    Auto Scaling group that must be new instances before the checkpoint is considered reached", and to reach
    one, Auto Scaling "will sometimes replace fewer but never more than what the minimum healthy percentage
    allows" (https://docs.aws.amazon.com/autoscaling/ec2/userguide/asg-adding-checkpoints-instance-refresh.html)."""
    return math.ceil(total * checkpoint_percent / 100)


def next_batch(new: int, total: int, checkpoint_percent: int, desired: int, min_healthy_percent: int) -> int:
    """Instances to replace now towards the checkpoint (0 once it is reached)."""
    return max(min(batch_size(desired, min_healthy_percent), needed_for(checkpoint_percent, total) - new), 0)
