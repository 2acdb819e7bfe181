"""What every vizcallbacks callback shares: when a step is due, its number, and safe writing."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections import defaultdict
from concurrent.futures import Future
from typing import Any, ClassVar

import keras
import numpy as np

from vizcallbacks.arrays import check_positive_int
from vizcallbacks.callbacks.background import BackgroundQueue, warn_once
from vizcallbacks.callbacks.fanout import FanOut
from vizcallbacks.compute.backend import compiles, eager_passes, process_index
from vizcallbacks.records import Record
from vizcallbacks.writers.base import check_writers

__all__ = ["VisualizationCallback", "is_chief"]

log = logging.getLogger("vizcallbacks")

# Queued steps beyond what publishes in this many seconds are skipped (never the last): memory
# stays flat and fit returns soon after its last epoch even when drawing is slower than training.
BACKLOG_SECONDS = 10.0


def is_chief() -> bool:
    """False on the non-chief workers of a multi-worker run (``TF_CONFIG``) and on every process
    but 0 of a JAX or PyTorch multi-process run: they log nothing."""
    import json

    if process_index() != 0:
        return False

    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = config.get("task", {})
    if not task:
        return True
    cluster = config.get("cluster", {})
    if task.get("type") == "chief":
        return True
    return "chief" not in cluster and task.get("type") == "worker" and task.get("index", 0) == 0


class VisualizationCallback(keras.callbacks.Callback):
    """Base of the loggers: step numbering, scheduling and never letting a view stop training.

    Step 0 is the network before training, captured in ``on_train_begin``; step k follows the
    k-th epoch. A second ``fit`` or a resumed one (``initial_epoch``) continues the numbering.
    Subclasses implement ``setup`` (validate, build once), ``compute`` (arrays, on the training
    thread) and ``view`` (arrays to records, on a background thread); the records go to every
    writer through one :class:`FanOut`.

    A subclass with ``compiles_in_background = True`` has its setup and step 0 computed eagerly
    and its passes traced by ``warm_up`` on the background thread while the first epoch trains
    (TensorFlow): fit reaches its first batch without waiting for the trace.
    """

    compiles_in_background: ClassVar[bool] = False

    def __init__(self, writers: Any, every_n_epochs: int = 1) -> None:
        super().__init__()
        self.fanout = FanOut(check_writers(writers))
        self.every_n_epochs = check_positive_int("every_n_epochs", every_n_epochs)
        self._queue = BackgroundQueue(type(self).__name__)
        self._last_step = -1
        self._step_offset = 0
        self._initial: Any = None  # the snapshot taken at train begin, waiting for its step
        self._active = False
        self._training = False  # between train begin and train end: a finish() now interrupts
        self._unlogged_step: int | None = None  # the last epoch's step, when not logged
        self._set_up_for: keras.Model | None = None  # setup runs once per model, not per fit
        self._step_zero: Any = None  # what setup computed, reused as step 0 of the same fit
        self._warmed: Future[None] | None = None  # the background trace of compute's passes
        # Seconds per logged step: "blocking" (on_epoch_end on the training thread), "compute"
        # (its forward pass / weight copy) and "publish" (render + write, background thread).
        self.timings: dict[str, list[float]] = defaultdict(list)
        self.skipped_steps: list[int] = []  # steps dropped because publishing fell behind

    # Subclass hooks -------------------------------------------------------------------------
    def setup(self) -> None:
        """Check the arguments against ``self.model`` and build what is reused every step."""

    def compute(self) -> Any:
        """Arrays for one step, computed on the training thread (weights as they are now)."""
        raise NotImplementedError

    def claims(self) -> set[tuple[str, ...]]:
        """What this logger writes, as ``(kind, layer, probe)``-like keys, known after ``setup``;
        two loggers claiming the same key on one writer are refused before training."""
        return set()

    def shared_claims(self) -> set[tuple[str, ...]]:
        """Keys that loggers may share on one writer (the probe image): the first one writes."""
        return set()

    def warm_up(self) -> None:
        """Run compute's compiled passes once and drop the result: their trace, on the
        background thread (with ``compiles_in_background``). Never changes the model."""

    def reuse_at_step_zero(self, payload: Any) -> None:
        """Keep ``payload``, computed by ``setup`` on the weights of train begin, as step 0."""
        self._step_zero = payload

    def opening_view(self, won: set[tuple[str, ...]]) -> list[Record]:
        """Records logged once, at step 0 of a new log; ``won``: the shared keys it got."""
        return []

    def view(self, payload: Any, step: int) -> list[Record]:
        """The records of one step, rendered from ``payload``; runs on the background thread."""
        raise NotImplementedError

    def summary_view(self) -> list[Record]:
        """What sums up the run (evolution strips), written at train end; background thread."""
        return []

    # Keras hooks ----------------------------------------------------------------------------
    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._active = is_chief()
        if not self._active:
            return
        self.fanout.open()
        self._training = True
        self._last_step = max(self._last_step, self.fanout.last_step())  # a resumed run goes on
        self._unlogged_step = None
        if self._set_up_for is not self.model:
            self._warmed = self._step_zero = None
            try:
                with self._uncompiled():
                    self.setup()
            except (ValueError, TypeError):
                raise  # the user's arguments: refused before the first step
            except Exception as err:  # our failure, not the user's: training goes on without us
                self._switch_off(err)
                return
            self._set_up_for = self.model
        won = self.fanout.claim(type(self).__name__, self.claims(), self.shared_claims())
        if self._last_step < 0:
            self.fanout.write(self.opening_view(won), 0)
        if self._step_zero is not None:
            self._initial, self._step_zero = self._step_zero, None
        else:
            with self._uncompiled():
                self._initial = self._safe_compute()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._queue.release()  # every callback's on_epoch_end has returned: render now
        if self._initial is None:
            return
        payload, self._initial = self._initial, None
        if self._warmed is None and self.compiles_in_background and compiles():
            # Now, not at train begin: the other loggers' setups do not share the GIL with it.
            self._warmed = self._queue.submit(f"{type(self).__name__} trace", self.warm_up)
        if epoch <= self._last_step:  # fit called again: continue after the last step
            self._step_offset = self._last_step - epoch
        else:
            self._step_offset = 0
            self._submit(payload, epoch)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not self._active:
            return
        started = time.perf_counter()
        step = epoch + 1 + self._step_offset
        last_epoch = epoch + 1 == (self.params or {}).get("epochs")
        if step % self.every_n_epochs == 0 or last_epoch:
            payload = self._safe_compute()
            if payload is not None:
                self._queue.hold()
                self._submit(payload, step)
                self.timings["blocking"].append(time.perf_counter() - started)
            self._unlogged_step = None
        else:
            self._unlogged_step = step  # logged at train end if training stops here

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if not self._active:
            return
        if self._initial is not None:  # fit ran no epoch (epochs=0): still log the snapshot
            self._submit(self._initial, self._last_step + 1)
            self._initial = None
        if self._unlogged_step is not None:  # stopped early (EarlyStopping, stop_training)
            payload = self._safe_compute()
            if payload is not None:
                self._submit(payload, self._unlogged_step)
            self._unlogged_step = None
        self._report_skipped(self._queue.skip_waiting(self._steps_to_keep()))
        self._queue.submit(f"{type(self).__name__} summary", self._write_summary, self._last_step)
        self._training = False
        self.finish()

    def finish(self) -> None:
        """Wait for queued views, then let go of the writers (safe to call twice).

        A writer is closed when the last callback using it lets go. ``fit`` calls this at train
        end; after an interrupted ``fit`` (``KeyboardInterrupt``, an exception in another
        callback) call it on each logger to be sure the last step is on disk.
        """
        self._queue.drain()
        if self._training:  # fit did not reach its end: the writers' runs end KILLED or FAILED
            self._training = False
            self.fanout.mark_unfinished()
        self.fanout.release()

    # Helpers --------------------------------------------------------------------------------
    def _switch_off(self, err: Exception) -> None:
        """Warn once that this logger stops for this run, release its writers, keep training."""
        self._active = False
        warn_once(
            self,
            "switched off",
            "vizcallbacks: %s is switched off for this run: it failed while preparing its views "
            "(%s: %s). Training goes on. This is a vizcallbacks bug: please report it with the "
            "model's summary().",
            type(self).__name__,
            type(err).__name__,
            err,
        )
        self.fanout.release()

    def _uncompiled(self) -> contextlib.AbstractContextManager[None]:
        """Eager passes until ``warm_up`` is queued: setup and step 0 do not wait for a trace."""
        if self.compiles_in_background and self._warmed is None:
            return eager_passes()
        return contextlib.nullcontext()

    def _safe_compute(self) -> Any:
        if self._warmed is not None:
            self._warmed.result()  # the trace is done (or failed, warned): no second one here
        started = time.perf_counter()
        try:
            payload = self.compute()
            self.timings["compute"].append(time.perf_counter() - started)
            return payload
        except Exception as err:  # a view must never kill training
            warn_once(
                self,
                "compute",
                "vizcallbacks: %s skipped a step (%s: %s)",
                type(self).__name__,
                type(err).__name__,
                err,
            )
            return None

    def warn_nonfinite(self, what: str, values: Any) -> None:
        """Warn once per ``what`` (a layer) when ``values`` hold NaN or Inf: a diverging run."""
        if not np.isfinite(values).all():
            warn_once(
                self,
                f"nonfinite {what}",
                "vizcallbacks: %s holds NaN or Inf (training may be diverging); drawn in "
                "magenta, statistics logged as they are. Warned once.",
                what,
            )

    def _submit(self, payload: Any, step: int) -> None:
        self._last_step = max(self._last_step, step)
        name = type(self).__name__
        job = self._publish_and_flush
        skipped = self._queue.submit_step(
            step, self._steps_to_keep(), f"{name} step", job, payload, step
        )
        self._report_skipped(skipped)

    def _steps_to_keep(self) -> int:
        """How many queued steps can be published in ``BACKLOG_SECONDS`` at the pace measured so
        far (all of them until a step has been timed)."""
        published = self.timings["publish"]
        if not published:
            return 1 << 30
        return max(1, int(BACKLOG_SECONDS / max(float(np.median(published)), 1e-3)))

    def _report_skipped(self, skipped: list[int]) -> None:
        if not skipped:
            return
        self.skipped_steps += skipped
        warn_once(
            self,
            "behind",
            "vizcallbacks: %s's drawing and writing fell behind training, so step(s) %s were "
            "skipped (the last step is always logged). To log every step, log less per step: a "
            "larger every_n_epochs, fewer layers= or a smaller max_channels. Warned once; "
            "logger.skipped_steps lists them all.",
            type(self).__name__,
            ", ".join(map(str, skipped)),
        )

    def _publish_and_flush(self, payload: Any, step: int) -> None:
        started = time.perf_counter()
        self.fanout.write(self.view(payload, step), step)
        self.fanout.flush()
        self.timings["publish"].append(time.perf_counter() - started)

    def _write_summary(self, step: int) -> None:
        self.fanout.write(self.summary_view(), step)
