"""Command-line entry points; `scripts/<name>` runs `python -m infra.cli.<name>` in the venv."""
