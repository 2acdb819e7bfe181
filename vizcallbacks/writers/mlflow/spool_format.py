"""The spool's format read back: is the directory ours (``run.json``), is each line of
``items.jsonl`` a whole item of a known kind?

The writer reopens its spool with it and ``sync`` checks a spool with it: a directory vizcallbacks
did not write is refused (without touching it), an item that cannot be what the writer wrote (a
torn line, no or an unknown ``kind``, a field of the wrong type) is named and kept aside, so one
damaged item never costs the others. Plain files, no MLflow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "FORMAT",
    "KINDS",
    "Damaged",
    "NotASpoolError",
    "check_fields",
    "check_run_record",
    "parse_line",
    "read_items",
    "salvage",
]

FORMAT = 2  # the spool layout this version reads and writes (2: payloads in packs)
_PAYLOAD = {"file": str, "pack": str, "offset": int, "size": int}  # where its file's bytes are
# The fields each kind of item needs, and their types.
KINDS: dict[str, dict[str, type]] = {
    "image": {"key": str, "step": int, "timestamp": int, "preview": int, **_PAYLOAD},
    "metrics": {"step": int, "timestamp": int, "values": dict},
    "tags": {"values": dict},
    "artifact": {"artifact_path": str, **_PAYLOAD},
    "end": {"status": str, "end_time": int},
}
RUN_STATUSES = ("FINISHED", "FAILED", "KILLED", "RUNNING", "SCHEDULED")
_ID = re.compile(r'"id"\s*:\s*(\d+)')
_START = re.compile(r'\{\s*"id"\s*:')
_KEY = re.compile(r'"(?:key|artifact_path)"\s*:\s*"((?:[^"\\]|\\.)*)')


class NotASpoolError(ValueError):
    """A directory vizcallbacks did not write (or a newer layout); it is left untouched."""


@dataclass(frozen=True)
class Damaged:
    """An item ``sync`` cannot send: where it is, its id and key when readable, and why."""

    line: int | None
    item_id: int | None
    key: str | None
    reason: str

    def __str__(self) -> str:
        name = f"item {self.item_id}" if self.item_id is not None else "an item"
        if self.key:
            name += f" ({self.key})"
        where = f" on line {self.line} of items.jsonl" if self.line is not None else ""
        return f"{name}{where}: {self.reason}"


def check_run_record(record: Any, directory: Path) -> None:
    """Raise :class:`NotASpoolError` unless ``record`` (a parsed ``run.json``) is one of ours."""
    if not isinstance(record, dict) or not {"format", "spool_id", "tracking_uri"} <= set(record):
        raise NotASpoolError(
            f"{directory} is not a vizcallbacks spool (its run.json has no format, spool_id and "
            "tracking_uri; another program's directory?); it was left untouched. Pass the "
            "directory named in the training warning."
        )
    if record["format"] != FORMAT:
        raise NotASpoolError(
            f"{directory} is a spool of format {record['format']!r}; this vizcallbacks reads "
            f"format {FORMAT}. Sync it with the vizcallbacks version that wrote it."
        )


def salvage(text: str) -> tuple[int | None, str | None]:
    """The id and key (or artifact path) still readable in a torn line, to name its item."""
    found_id, found_key = _ID.search(text), _KEY.search(text)
    return (
        int(found_id[1]) if found_id else None,
        found_key[1] if found_key else None,
    )


def parse_line(line: str) -> tuple[list[dict[str, Any]], str]:
    """The JSON objects on ``line`` and the unreadable text among them (empty when whole).

    A line cut short by a crash and then continued by a later append holds the torn start of
    one item glued to whole ones: the whole ones are recovered, the torn text returned.
    """
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    torn: list[str] = []
    pos = 0
    while pos < len(line):
        if line[pos].isspace():
            pos += 1
            continue
        try:
            value, end = decoder.raw_decode(line, pos)
        except ValueError:
            value, end = None, pos
        if isinstance(value, dict):
            found.append(value)
            pos = end
            continue
        following = _START.search(line, pos + 1)
        stop = following.start() if following else len(line)
        torn.append(line[pos:stop])
        pos = stop
    return found, "".join(torn)


def check_fields(item: Mapping[str, Any]) -> str | None:
    """Why ``item`` is not a whole item of a known kind, or None when it is."""
    if not isinstance(item.get("id"), int) or isinstance(item.get("id"), bool):
        return "no integer id"
    kind = item.get("kind")
    if kind is None:
        return "no kind"
    if kind not in KINDS:
        return f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})"
    for name, expected in KINDS[kind].items():
        value = item.get(name)
        if value is None:
            return f"{kind} without {name!r}"
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            return f"{kind} {name!r} is {type(value).__name__}, not {expected.__name__}"
    if kind == "metrics" and not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in item["values"].values()
    ):
        return "metrics with a value that is not a number"
    if kind == "tags" and not all(isinstance(v, str) for v in item["values"].values()):
        return "tags with a value that is not text"
    if kind == "end" and item["status"] not in RUN_STATUSES:
        return f"unknown run status {item['status']!r}"
    if "file" in item and (not item["file"] or "/" in item["file"] or "\\" in item["file"]):
        return f"bad file name {item['file']!r}"
    return None


def read_items(path: Path) -> tuple[list[dict[str, Any]], list[Damaged], Damaged | None]:
    """The whole items of ``items.jsonl``, the damaged ones by name, and a last line cut short.

    Read only: a cut-short last line is dealt with in memory, never by writing to the file.
    """
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return [], [], None
    lines = text.split("\n")
    tail = lines.pop()  # "" when the file ends with a newline
    items: list[dict[str, Any]] = []
    damaged: list[Damaged] = []
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    for number, line in numbered:
        found, torn = parse_line(line)
        if torn.strip():
            damaged.append(Damaged(number, *salvage(torn), "a line cut short (unreadable JSON)"))
        for item in found:
            reason = check_fields(item)
            if reason is None:
                items.append(item)
                continue
            key = item.get("key", item.get("artifact_path"))
            item_id = item.get("id") if isinstance(item.get("id"), int) else None
            damaged.append(Damaged(number, item_id, str(key) if key else None, reason))
    incomplete = None
    if tail.strip():
        found, torn = parse_line(tail)
        if found and not torn.strip() and all(check_fields(it) is None for it in found):
            items.extend(found)  # whole, only the newline is missing
        else:
            incomplete = Damaged(
                len(lines) + 1, *salvage(tail), "the last line is cut short (never completed)"
            )
    return items, damaged, incomplete
