"""The one error the CLI turns into a one-line message and exit code 2: a mistake the user can fix.

Raised anywhere below the commands (unknown site, unmapped column, missing file, unreachable database); each
command is wrapped in `reported`, which prints `error: <message>` on stderr and exits 2, the code click also
uses for a usage error. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

EXIT_USAGE = 2
P = ParamSpec("P")
R = TypeVar("R")


class CliError(Exception):
    """A user-fixable problem; the message is printed as is, so it should say what to do."""


def reported(command: Callable[P, R]) -> Callable[P, R]:
    """Wrap a typer command so a CliError becomes `error: ...` on stderr and exit code 2.
    functools.wraps keeps the signature typer reads the options from."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except CliError as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(EXIT_USAGE) from None

    return wrapper
