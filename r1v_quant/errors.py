"""Errors the user can act on.

Anything raised as an :class:`InputError` is printed by the CLI as one line
(``error: <what>``) and exits with status 2; everything else is a bug and keeps
its traceback.  Messages name the file (and line, tensor or key) at fault.
"""

from __future__ import annotations


class R1VError(Exception):
    """Base class of every error meant for the user, not for a developer."""

    exit_code = 2


class InputError(R1VError):
    """The input (checkpoint, data file, option) is unusable as given."""


class OutputError(R1VError):
    """An output cannot be written (unwritable folder, full disk, exists)."""


class Interrupted(R1VError):
    """Ctrl-C, said with what was kept and how to continue (exit 130, as for any interrupt)."""

    exit_code = 130
