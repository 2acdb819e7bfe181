"""The command line's subcommands, one module each (``sync``, ``compare``, ``report``): each has an
``add(commands)`` that registers its parser and a handler that returns the exit status.

Here: what every subcommand shares, the exit statuses and how an error is said in one line.
"""

from __future__ import annotations

__all__ = ["EXIT_STATUS", "FAILED", "USAGE", "short_text"]

FAILED = 1  # something could not be done now: what is left is kept, run the command again
USAGE = 2  # what was passed is wrong: a tracking URI, a directory, a run, an output path
EXIT_STATUS = (
    "Exit status: 0 when everything was done; 1 when something could not be sent or written "
    "now (a server that does not answer, a full disk, a damaged item: each is named, and what "
    "is left is kept, so running the command again finishes the job); 2 when what was passed "
    "is wrong (a tracking URI MLflow cannot use, a directory that is not a vizcallbacks spool, "
    "a run that does not exist, an output suffix other than .png, .jpg or .jpeg)."
)


def short_text(err: BaseException) -> str:
    """``Type: message``, on one line, for an error message."""
    return f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
