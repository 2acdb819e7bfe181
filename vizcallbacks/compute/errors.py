"""The error a failure inside vizcallbacks raises, so a logger can switch itself off, not fit."""

from __future__ import annotations

__all__ = ["ViewFailure", "view_failure"]


class ViewFailure(RuntimeError):  # noqa: N818  (the name the callbacks catch)
    """vizcallbacks itself failed (not the user's arguments): the logger stops, training goes on."""


def view_failure(where: str, err: BaseException) -> ViewFailure:
    """A :class:`ViewFailure` naming the layer or block at fault and the original exception."""
    return ViewFailure(
        f"vizcallbacks failed in {where}: {type(err).__name__}: {err}. This is a bug in "
        "vizcallbacks, not in your model; please report it with the output of model.summary()."
    )
