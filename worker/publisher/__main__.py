"""`python -m worker.publisher`: one sample, printed as JSON (worker.publisher.cli)."""

from worker.publisher.cli import main

raise SystemExit(main())
