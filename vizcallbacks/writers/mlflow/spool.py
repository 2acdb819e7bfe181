"""A spool on local disk: everything a writer must deliver, kept until the backend confirms it.

Layout of one spool directory (one per writer and run)::

    run.json         where the items go: tracking URI, experiment, run id (null until created)
    items.jsonl      one JSON object per line, in order, each with an integer ``id``
    payloads/<id>.pack  the files (PNG images, JSON histograms...) of the items appended
                     together, back to back, starting with item <id>'s; each item names its
                     pack, offset and size (one file created per append, not one per item)
    delivered.txt    ids confirmed by the backend, one per line (appended, never rewritten)
    lock             held while someone delivers, so a writer and ``sync`` never both send

Items are written before they are sent, so a crash, a dead server or a killed process loses
nothing; delivering means appending ids to ``delivered.txt``, so replaying a spool twice sends
each item once. No MLflow import here: this is plain files.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from vizcallbacks.writers.file_lock import try_lock, unlock
from vizcallbacks.writers.mlflow.spool_format import (
    FORMAT,
    Damaged,
    NotASpoolError,
    check_run_record,
    read_items,
)

__all__ = ["Entry", "Spool", "SpoolWriteError", "describe_items", "find_spools"]

Entry = tuple[str, Mapping[str, Any], tuple[str, bytes] | None]  # kind, fields, file or None

_RUN = "run.json"
_ITEMS = "items.jsonl"
_DELIVERED = "delivered.txt"
_LOCK = "lock"
_WRITER = "writer.lock"  # held by the training process writing the spool, while it runs
_PAYLOADS = "payloads"


class SpoolWriteError(OSError):
    """A spool directory could not be written (a full disk); the message says what that loses."""


class Spool:
    """The items of one run waiting on local disk; thread-safe within a process.

    Create a new one with :meth:`create`, open an existing one with :meth:`open`.
    """

    damaged: tuple[Damaged, ...] = ()  # items :meth:`open` found damaged, never loaded
    incomplete: Damaged | None = None  # a last line cut short, seen by :meth:`open`
    ended: bool = False  # :meth:`open` found a run status item, delivered or not
    last_heard: int = 0  # the latest item timestamp :meth:`open` found (ms since the epoch)

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._mutex = threading.Lock()
        self._run: dict[str, Any] = {}
        self._pending: dict[int, dict[str, Any]] = {}
        self._delivered: set[int] = set()
        self._delivered_offset = 0
        self._next_id = 1
        self._packs: dict[str, set[int]] = {}  # pack → ids of its items not yet delivered
        self._writer: Any = None  # the open writer.lock while this process writes the spool

    # Opening -----------------------------------------------------------------------------------
    @classmethod
    def create(cls, directory: str | Path, run: Mapping[str, Any]) -> Spool:
        """Create ``directory`` (and parents) holding ``run`` as ``run.json`` and no items.

        On a full disk (any ``OSError``) it raises and leaves nothing behind that it made.
        """
        spool = cls(Path(directory))
        existed = spool.directory.exists()
        try:
            (spool.directory / _PAYLOADS).mkdir(parents=True, exist_ok=True)
            spool._run = {"format": FORMAT, **run}
            spool._write_run()
            (spool.directory / _ITEMS).touch()
        except OSError:
            if not existed:
                shutil.rmtree(spool.directory, ignore_errors=True)
            raise
        return spool

    @classmethod
    def open(cls, directory: str | Path) -> Spool:
        """Load the spool in ``directory`` without writing to it; refuse one vizcallbacks did not
        write (:class:`NotASpoolError`) or a missing one (``FileNotFoundError``), naming it.

        Damaged items are kept aside in :attr:`damaged`, not loaded; a last line cut short (the
        writer crashed, or is still writing it) in :attr:`incomplete`.
        """
        spool = cls(Path(directory))
        run_file = spool.directory / _RUN
        if not run_file.is_file():
            raise FileNotFoundError(
                f"{str(directory)!r} is not a vizcallbacks spool directory (it has no {_RUN}). "
                "Pass the directory named in the training warning, e.g. "
                "vizcallbacks-spool/<run>-<id>."
            )
        try:
            record = json.loads(run_file.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise NotASpoolError(
                f"{directory}: its {_RUN} is not readable JSON ({err}); it was left untouched."
            ) from err
        check_run_record(record, spool.directory)
        spool._run = record
        items, damaged, incomplete = read_items(spool.directory / _ITEMS)
        for item in items:
            spool._pending[item["id"]] = item
        spool._hold(items)
        spool.ended = any(item["kind"] == "end" for item in items)
        spool.last_heard = max(
            (int(it.get("timestamp") or it.get("end_time") or 0) for it in items), default=0
        )
        spool.refresh()
        known = spool._delivered | set(spool._pending)
        seen = known | {d.item_id for d in damaged if d.item_id is not None}
        spool._next_id = max(seen, default=0) + 1  # an id once written is never given again
        # a torn line's id that was delivered, or written again whole since, lost nothing
        spool.damaged = tuple(d for d in damaged if d.item_id not in known)
        spool.incomplete = incomplete  # its id is reused: its append never returned
        return spool

    # Run record --------------------------------------------------------------------------------
    @property
    def run(self) -> dict[str, Any]:
        """A copy of ``run.json`` as last read or written by this process."""
        with self._mutex:
            return dict(self._run)

    def reload_run(self) -> dict[str, Any]:
        """Read ``run.json`` again (another process may have created the run) and return it."""
        with self._mutex:
            with contextlib.suppress(OSError, ValueError):
                self._run = json.loads((self.directory / _RUN).read_text(encoding="utf-8"))
            return dict(self._run)

    def update_run(self, **fields: Any) -> None:
        """Merge ``fields`` into ``run.json``, replacing the file atomically."""
        with self._mutex:
            self._run.update(fields)
            self._write_run()

    def _write_run(self) -> None:
        tmp = self.directory / f"{_RUN}.tmp"
        try:
            tmp.write_text(json.dumps(self._run, indent=1), encoding="utf-8")
            os.replace(tmp, self.directory / _RUN)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    # Items -------------------------------------------------------------------------------------
    def append(
        self, kind: str, fields: Mapping[str, Any], payload: tuple[str, bytes] | None = None
    ) -> dict[str, Any]:
        """Store one item (and its file ``payload=(name, bytes)``); return it with its id."""
        return self.append_many([(kind, fields, payload)])[0]

    def append_many(self, entries: Sequence[Entry]) -> list[dict[str, Any]]:
        """Store ``(kind, fields, payload)`` items in one write of their lines; return them.

        Their files go first, back to back in one pack, so a line never names a missing file.
        A write that fails (a full disk) raises and is undone whole: no partial pack, no line
        cut short.
        """
        with self._mutex:
            items: list[dict[str, Any]] = []
            files: list[bytes] = []
            pack = f"{self._next_id}.pack"
            offset = 0
            for number, (kind, fields, payload) in enumerate(entries):
                item = {"id": self._next_id + number, "kind": kind, **fields}
                if payload is not None:
                    name, data = payload
                    item.update(file=name, pack=pack, offset=offset, size=len(data))
                    files.append(data)
                    offset += len(data)
                items.append(item)
            path = self.directory / _ITEMS
            pack_path = self.directory / _PAYLOADS / pack
            size = path.stat().st_size if path.exists() else 0
            try:
                if files:
                    with open(pack_path, "wb") as f:
                        f.writelines(files)
                with open(path, "a", encoding="utf-8") as f:
                    f.write("".join(json.dumps(item) + "\n" for item in items))
            except OSError:
                if files:
                    pack_path.unlink(missing_ok=True)
                with contextlib.suppress(OSError), open(path, "r+b") as f:
                    f.truncate(size)  # shrinking needs no space
                raise
            self._next_id += len(items)
            self._pending.update((item["id"], item) for item in items)
            self._hold(items)
            return [dict(item) for item in items]

    def read_payload(self, item: Mapping[str, Any]) -> bytes:
        """The file stored with ``item``; ``OSError`` naming it when it is gone or cut short."""
        path = self.directory / _PAYLOADS / str(item["pack"])
        with open(path, "rb") as f:
            f.seek(int(item["offset"]))
            data = f.read(int(item["size"]))
        if len(data) != item["size"]:
            raise OSError(
                errno.EIO, f"its file {item['file']} is cut short ({path.name} ends early)"
            )
        return data

    def _hold(self, items: Iterable[Mapping[str, Any]]) -> None:
        """Count the pending items of each pack, so a pack goes once all of its items are."""
        for item in items:
            if "pack" in item:
                self._packs.setdefault(str(item["pack"]), set()).add(int(item["id"]))

    def refresh(self) -> None:
        """Read ids that another process (``sync``) marked delivered since the last look."""
        path = self.directory / _DELIVERED
        with self._mutex:
            try:
                with open(path, encoding="utf-8") as f:
                    f.seek(self._delivered_offset)
                    text = f.read()
            except FileNotFoundError:
                return
            complete = text[: text.rfind("\n") + 1]  # ignore a line still being written
            self._delivered_offset += len(complete.encode("utf-8"))
            for line in complete.splitlines():
                if line.strip().isdigit():
                    self._forget(int(line))

    def check_writable(self, items: int) -> None:
        """Raise ``OSError`` now, before a run is created, if recording delivery would fail.

        Replaces ``run.json`` with itself, opens ``delivered.txt`` for appending (ending a line a
        full disk cut short so it never reads as an id) and wants room for ``items`` ids.
        """
        with self._mutex:
            try:
                self._write_run()
            except OSError:
                (self.directory / f"{_RUN}.tmp").unlink(missing_ok=True)
                raise
        path = self.directory / _DELIVERED
        with open(path, "ab") as f:
            if f.tell() and path.read_bytes()[-1:] != b"\n":
                f.write(b" (cut short)\n")  # not digits: refresh() ignores the line
        needed = 64 * 1024 + 16 * items
        free = shutil.disk_usage(self.directory).free
        if free < needed:
            raise OSError(
                errno.ENOSPC, f"{free} bytes free, {needed} needed to record the delivery"
            )

    def pending(self) -> list[dict[str, Any]]:
        """Items not yet delivered, in the order they were written."""
        with self._mutex:
            return [dict(item) for item in self._pending.values()]

    def mark_delivered(self, ids: Iterable[int]) -> None:
        """Record ``ids`` as delivered (appended to ``delivered.txt``), then drop their files."""
        ids = sorted(set(ids))
        if not ids:
            return
        with self._mutex:
            with open(self.directory / _DELIVERED, "a", encoding="utf-8") as f:
                f.write("".join(f"{i}\n" for i in ids))
            for i in ids:
                self._forget(i)

    def mark_refused(self, reasons: Mapping[int, str]) -> None:
        """Settle items the backend refused for good: their reason goes to ``refused.jsonl``,
        their id to ``delivered.txt`` (nothing is left to send: neither retried nor replayed)."""
        if not reasons:
            return
        with self._mutex, open(self.directory / "refused.jsonl", "a", encoding="utf-8") as f:
            f.write("".join(json.dumps({"id": i, "why": why}) + "\n" for i, why in reasons.items()))
        self.mark_delivered(reasons)

    def _forget(self, item_id: int) -> None:
        self._delivered.add(item_id)
        item = self._pending.pop(item_id, None)
        if item is None or "pack" not in item:
            return
        waiting = self._packs.get(str(item["pack"]), set())
        waiting.discard(item_id)
        if not waiting:
            self._packs.pop(str(item["pack"]), None)
            with contextlib.suppress(OSError):
                (self.directory / _PAYLOADS / str(item["pack"])).unlink()

    def delivered_count(self) -> int:
        with self._mutex:
            return len(self._delivered)

    # Exclusion between processes ---------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, timeout: float = 0.0) -> Iterator[bool]:
        """Hold the spool's lock file; yields False if another holder kept it for ``timeout`` s.

        The operating system releases the lock when its process exits, killed or not.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / _LOCK, "a+b") as handle:
            deadline = time.monotonic() + timeout
            while not try_lock(handle):
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.1)
            try:
                yield True
            finally:
                unlock(handle)

    def hold_for_writer(self) -> None:
        """Say, until :meth:`let_go` or this process ends (killed or not), that a live writer
        fills this spool: ``sync`` then sends what it holds but leaves its run's end alone."""
        if self._writer is None:
            handle = open(self.directory / _WRITER, "a+b")  # noqa: SIM115 (held until let_go)
            if try_lock(handle):
                self._writer = handle
            else:
                handle.close()

    def let_go(self) -> None:
        """The writer is done with this spool (see :meth:`hold_for_writer`)."""
        if self._writer is not None:
            with contextlib.suppress(OSError):
                unlock(self._writer)
            self._writer.close()
            self._writer = None

    def writer_alive(self) -> bool:
        """Whether a writer (in this process or another) still fills this spool."""
        if self._writer is not None:
            return True
        with contextlib.suppress(OSError), open(self.directory / _WRITER, "rb") as handle:
            if not try_lock(handle):
                return True
            unlock(handle)
        return False

    def remove(self) -> None:
        """Delete the spool directory (when everything in it was delivered)."""
        self.let_go()
        shutil.rmtree(self.directory, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.directory.parent.rmdir()  # the spool root, if this was its last spool


def describe_items(items: Iterable[Mapping[str, Any]]) -> str:
    """``"12 images, 30 metric batches"``: what a list of items holds, for messages."""
    names = {
        "image": ("image", "images"),
        "metrics": ("metric batch", "metric batches"),
        "tags": ("tag batch", "tag batches"),
        "artifact": ("file", "files"),
        "end": ("run status", "run statuses"),
    }
    counts = Counter(item["kind"] for item in items)
    parts = []
    for kind, n in counts.items():
        one, many = names.get(kind, (kind, kind))
        parts.append(f"{n} {one if n == 1 else many}")
    return ", ".join(parts) or "nothing"


def find_spools(path: str | Path) -> list[Path]:
    """``path`` itself if it is a spool, else the spools directly inside it, oldest first."""
    root = Path(path)
    if (root / _RUN).is_file():
        return [root]
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if (p / _RUN).is_file()]
    return sorted(found, key=lambda p: (p / _RUN).stat().st_mtime)
