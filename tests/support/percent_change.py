"""How EC2 Auto Scaling turns a PercentChangeInCapacity step into instances, for tests that check a
policy against AWS's rule rather than against the model that implements it."""

from __future__ import annotations


def removed(instances: int, percent: float, min_magnitude: int) -> int:
    """Instances a PercentChangeInCapacity step of -`percent` removes from `instances`: AWS rounds a
    fraction of magnitude above 1 towards zero and one between 0 and 1 away from it, then applies
    MinAdjustmentMagnitude (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PutScalingPolicy.html)."""
    raw = instances * percent / 100
    rounded = 1 if 0 < raw < 1 else int(raw)
    return max(rounded, min_magnitude)
