"""`python -m worker.deadletter`."""

import sys

from worker.deadletter.cli import main

sys.exit(main())
