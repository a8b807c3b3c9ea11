"""The Celery application that celery-cluster bakes into its worker image.

Nothing in this package imports `infra` or Pulumi: it runs on the VMs.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("celery-cluster-worker")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
