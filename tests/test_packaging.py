"""The wheel holds the package and nothing else: no top-level `experiments` in site-packages."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Left behind in a checkout by runs and builds; a stale build/ would leak into the wheel.
NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "site",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    "logs",
    "mlruns",
    "*.db",
    "vizcallbacks-spool",
)


def _source_copy(into: Path) -> Path:
    """The checkout's files as a fresh clone would have them (tracked or new, not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
    )
    if listed.returncode != 0:  # not a git checkout: copy, leaving out what runs leave behind
        return Path(shutil.copytree(ROOT, into, ignore=NOT_SOURCE))
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


def test_wheel_holds_vizcallbacks_only(tmp_path: Path) -> None:
    source = _source_copy(tmp_path / "source")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        check=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("vizcallbacks-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    outside = [n for n in names if not n.startswith(("vizcallbacks/", "vizcallbacks-"))]
    assert outside == []
    assert "vizcallbacks/__init__.py" in names
    assert {
        "vizcallbacks/dashboard/static/dashboard.js",
        "vizcallbacks/dashboard/static/dashboard.css",
    } <= set(names)


def test_experiments_and_their_data_come_from_the_checkout() -> None:
    import experiments
    from experiments.datasets import FASHION_SUBSET

    assert Path(experiments.__file__).resolve().parent == ROOT / "experiments"
    assert FASHION_SUBSET.is_file()
