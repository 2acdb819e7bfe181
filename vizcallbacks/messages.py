"""One line for the user at the end of training, where Keras prints its own progress."""

from __future__ import annotations

import logging
import sys

__all__ = ["say"]

log = logging.getLogger("vizcallbacks")


def say(message: str) -> None:
    """Print ``message`` to stdout while Keras' interactive logging is on, else log it (INFO).

    Keras is only consulted if something already imported it: writers never load it.
    """
    keras = sys.modules.get("keras")
    config = getattr(keras, "config", None)
    if config is not None and config.is_interactive_logging_enabled():
        sys.stdout.write(message + "\n")
        sys.stdout.flush()
    else:
        log.info(message)
