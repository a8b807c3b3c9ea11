"""Tables that fit the width they are printed at: fewer columns, said so, never a value cut to "…".

Rich fits a table that is too wide by shrinking its columns, and a column that cannot wrap then loses
the end of each value to "…" (`scripts/simulate` at 80 columns printed `│ 10… │ 12… │ mi… │`). Here a
table that does not fit loses whole columns instead, the least useful first, and a line under it
names them. A terminal is printed at its width; a pipe at COLUMNS when that is set (a CI log that sets
it, a test), else wide enough for every column, since a log has no right margin.
"""

from __future__ import annotations

import io
import os
import re
from collections import Counter
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

PIPE_WIDTH = 170
"""Columns of a pipe without COLUMNS: the widest table the commands print (scripts/simulate) fits."""
UNCUT_WIDTH = 10_000
"""Wide enough for any table to show every value whole."""


def output_console(pipe_width: int = PIPE_WIDTH, *, stderr: bool = False, soft_wrap: bool = False) -> Console:
    """A console for a command's output: the terminal's width, or in a pipe COLUMNS or `pipe_width`."""
    console = Console(stderr=stderr, soft_wrap=soft_wrap)
    if console.is_terminal or os.environ.get("COLUMNS", "").isdigit():
        return console  # rich reads COLUMNS itself
    return Console(stderr=stderr, soft_wrap=soft_wrap, width=pipe_width)


_BOX = re.compile("[\u2500-\u257f]")  # the table's lines (Unicode box drawing)


def _words(table: Table, width: int) -> Counter[str]:
    """Every word the table shows at `width`, ignoring its lines."""
    probe = Console(width=width, file=io.StringIO(), color_system=None, force_terminal=False)
    with probe.capture() as captured:
        probe.print(table)
    return Counter(_BOX.sub(" ", captured.get()).split())


def fits(console: Console, table: Table) -> bool:
    """True when `table` shows every word whole at the console's width (a cell may wrap at spaces). Rich
    cuts a value to "…", or squeezes a wrapping column to nothing, and its measurement does not tell."""
    return not _words(table, UNCUT_WIDTH) - _words(table, console.width)


def fit(console: Console, table: Table, drop_first: Sequence[str] = ()) -> list[str]:
    """Remove columns from `table` until it fits: those named in `drop_first`, in that order, then from the
    right; never the first column (what each row is). Returns the headers removed, in order."""
    dropped: list[str] = []
    while not fits(console, table) and len(table.columns) > 1:
        named = [c for name in drop_first for c in table.columns[1:] if str(c.header) == name]
        victim = named[0] if named else table.columns[-1]
        table.columns.remove(victim)
        dropped.append(str(victim.header))
    return dropped


def print_fitted(console: Console, table: Table, drop_first: Sequence[str] = ()) -> list[str]:
    """Print `table` fitted to the console, then which columns were left out; returns them."""
    dropped = fit(console, table, drop_first)
    console.print(table)
    if dropped:
        console.print(
            f"({len(dropped)} of the table's columns left out to fit {console.width} columns: {', '.join(dropped)}; "
            "a wider terminal, or COLUMNS=170, shows them)",
            soft_wrap=False,
            markup=False,
        )
    return dropped


def print_pairs(console: Console, title: str, pairs: Sequence[tuple[str, str]]) -> None:
    """Names and values (ARNs, URLs: values to copy whole): a two-column table when it fits, else each name
    on its line and its value indented under it, since dropping the value column would leave nothing."""
    table = Table(title=title)
    table.add_column("name")
    table.add_column("value", no_wrap=True)
    for name, value in pairs:
        table.add_row(name, value)
    if fits(console, table):
        console.print(table)
        return
    console.print(title, soft_wrap=True)
    for name, value in pairs:
        console.print(f"{name}\n    {value}", markup=False, soft_wrap=True, highlight=False)
