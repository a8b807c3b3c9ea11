"""The security baseline (docs/architecture.md) as a Pulumi policy pack. `rules.py` holds pure functions that
the pack runs in `pulumi preview --policy-pack policy` and the unit tests run on rendered stacks."""
