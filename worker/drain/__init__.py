"""The drain agent (`celery-cluster-drain`, `python -m worker.drain`): drains this instance's worker
before the instance goes away, and protects busy instances from scale-in.
"""
