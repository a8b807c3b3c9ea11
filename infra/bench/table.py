"""The one shape of every `make bench` section: a left-aligned title, numbers right-aligned."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table


def bench_table(title: str, headers: Sequence[str], *, caption: str | None = None, left: Sequence[str] = ()) -> Table:
    """A table with `headers` as columns; those named in `left` are labels (left-aligned), the rest numbers."""
    out = Table(title=title, title_justify="left", caption=caption)
    for header in headers:
        out.add_column(header, justify="left" if header in left else "right")
    return out
