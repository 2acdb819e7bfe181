"""The ends of a writer's life: where a resumed run stands (its last logged step), and what
happens at interpreter exit to a writer still open (Ctrl-C, an exception, SIGTERM).

At exit, a run the writer owns is ended as KILLED or FAILED instead of staying RUNNING forever,
and whatever could not be sent is named, last, with the ``sync`` command that replays it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from vizcallbacks.mlflow_store.server import import_mlflow, probe, short_error
from vizcallbacks.tags import is_epoch_step
from vizcallbacks.writers.mlflow.spool import Spool, find_spools

__all__ = [
    "EXIT_SECONDS",
    "call_at_exit",
    "exit_status",
    "forget_at_exit",
    "logged_last_step",
    "spooled_last_step",
]

log = logging.getLogger("vizcallbacks")

EXIT_SECONDS = 5.0  # how long a process that is ending waits for the server to take the rest
HISTORY_WORKERS = 8  # metric histories read in parallel when resuming a run


class _Signals:
    """Whether Ctrl-C (caught or not) or SIGTERM reached this process, through the handlers
    installed below; writers open while it happened end their runs KILLED."""

    interrupted = False
    terminated = False
    installed = False


def _on_sigterm(signum: int, frame: Any) -> None:
    _Signals.terminated = True
    raise SystemExit(128 + signum)  # unwinds training, then runs atexit (the default would not)


def _on_sigint(signum: int, frame: Any) -> None:
    _Signals.interrupted = True
    signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt, as before


def _install_signal_handlers() -> None:
    """Note SIGINT and turn SIGTERM into ``SystemExit`` (so exit handlers run); only where nobody
    set a handler of their own, and only from the main thread."""
    if _Signals.installed or threading.current_thread() is not threading.main_thread():
        return
    _Signals.installed = True
    with contextlib.suppress(ValueError, OSError):
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_sigterm)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _on_sigint)


def exit_status() -> str:
    """``KILLED`` when training stops after Ctrl-C (caught or not) or SIGTERM, else ``FAILED``."""
    seen = [getattr(sys, "last_type", None), sys.exc_info()[0]]  # uncaught; being handled now
    interrupted = any(isinstance(t, type) and issubclass(t, KeyboardInterrupt) for t in seen)
    return "KILLED" if interrupted or _Signals.interrupted or _Signals.terminated else "FAILED"


_open_at_exit: dict[int, tuple[object, str]] = {}  # held strongly: a returned main() drops them
_open_lock = threading.Lock()


def _end_open_writers() -> None:
    with _open_lock:
        owners = list(_open_at_exit.values())
        _open_at_exit.clear()
    for owner, method in owners:
        try:
            getattr(owner, method)()
        except Exception as err:  # exit goes on whatever happens here
            log.warning("vizcallbacks: %s at exit failed: %s", type(owner).__name__, err)


atexit.register(_end_open_writers)


def call_at_exit(owner: object, method: str) -> None:
    """At interpreter exit, call ``owner.<method>()`` unless :func:`forget_at_exit` was called
    first. ``owner`` is held until then, even when nothing else refers to it any more."""
    with _open_lock:
        _open_at_exit[id(owner)] = (owner, method)
    _install_signal_handlers()


def forget_at_exit(owner: object) -> None:
    """``owner`` was closed: nothing to do for it at exit, and it may be garbage collected."""
    with _open_lock:
        _open_at_exit.pop(id(owner), None)


def logged_last_step(uri: str, run_id: str) -> int:
    """The highest epoch step of any metric already in run ``run_id`` (batch-stepped kinds left
    out); -1 if none or unreachable."""
    if probe(uri) is not None:
        return -1
    client = import_mlflow().MlflowClient(uri)
    try:
        keys = [key for key in client.get_run(run_id).data.metrics if is_epoch_step(key)]
        if not keys:
            return -1
        history: Callable[[str], list[Any]] = lambda key: client.get_metric_history(run_id, key)  # noqa: E731
        with ThreadPoolExecutor(min(HISTORY_WORKERS, len(keys))) as pool:
            steps = [m.step for metrics in pool.map(history, keys) for m in metrics]
    except Exception as err:
        log.warning(
            "vizcallbacks: could not read the steps of run %s: %s", run_id, short_error(err)
        )
        return -1
    return max(steps, default=-1)


def spooled_last_step(spool_dir: Path, run_id: str | None, own: Spool | None) -> int:
    """The highest step still waiting in ``own`` and in the other spools of ``run_id``."""
    spools: list[Spool] = [own] if own is not None else []
    if run_id:
        for directory in find_spools(spool_dir):
            if own is not None and directory.resolve() == own.directory.resolve():
                continue
            with contextlib.suppress(OSError, ValueError):
                other = Spool.open(directory)
                if other.run.get("run_id") == run_id:
                    spools.append(other)
    return _highest_step(item for spool in spools for item in spool.pending())


def _highest_step(items: Iterable[Mapping[str, Any]]) -> int:
    steps = [
        int(it["step"]) for it in items if isinstance(it.get("step"), int) and _counts_epochs(it)
    ]
    return max(steps, default=-1)


def _counts_epochs(item: Mapping[str, Any]) -> bool:
    """False for an item whose every key is batch-stepped (a resume continues at epochs)."""
    keys = [item["key"]] if "key" in item else list(item.get("values") or {})
    return not keys or any(is_epoch_step(str(key)) for key in keys)
