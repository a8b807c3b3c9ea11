"""How a command line reports a bad input: plain lines on stderr, one per problem.

Not through rich: its console interprets `[...]` in a value as markup (a queue named `jobs[/]`
crashed it, and a regular expression lost its `[a-z]`) and wraps long lines at 80 columns when
the output is not a terminal, so one bad key became two lines in CI logs.
"""

from __future__ import annotations

import sys


def report(command: str, error: BaseException) -> None:
    """Each line of the error, prefixed by the command's name, exactly as written."""
    for line in str(error).splitlines() or [type(error).__name__]:
        sys.stderr.write(f"{command}: {line}\n")
    sys.stderr.flush()
