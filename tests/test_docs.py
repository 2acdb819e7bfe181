"""The documentation site tells the truth: it builds strictly, offline, its module map is the
tree, and its API reference holds every public name."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import vizcallbacks as vc

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# One line per module on the architecture page: "- `vizcallbacks/<path>.py` — what it does".
MODULE_LINE = re.compile(r"^- `(vizcallbacks/[^`]+\.py)` — \S", re.M)


def _docs_tool(name: str) -> ModuleType:
    """The docs extra's module; CI installs it, so only a developer's run may skip."""
    if os.environ.get("CI"):
        return importlib.import_module(name)
    return pytest.importorskip(
        name, reason="the docs extra is not installed: pip install -e '.[docs]'"
    )


def test_module_map_is_the_tree() -> None:
    page = (DOCS / "architecture.md").read_text(encoding="utf-8")
    listed = MODULE_LINE.findall(page)
    tree = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "vizcallbacks").rglob("*.py"))
    assert len(listed) == len(set(listed)), "a module is listed twice in docs/architecture.md"
    assert sorted(set(tree) - set(listed)) == [], "add these to docs/architecture.md's module map"
    assert sorted(set(listed) - set(tree)) == [], "these are listed but are not in the tree"


def test_api_reference_resolves_every_public_name() -> None:
    griffe = _docs_tool("griffe")
    package = griffe.load("vizcallbacks", search_paths=[str(ROOT)], resolve_aliases=True)
    public = [name for name in vc.__all__ if name != "__version__"]
    # The lazy names are found through the TYPE_CHECKING imports of vizcallbacks/__init__.py.
    members = package.members
    unresolved = [n for n in public if not getattr(members.get(n), "resolved", n in members)]
    assert unresolved == [], "import these under TYPE_CHECKING in vizcallbacks/__init__.py"
    undocumented = [n for n in public if not package[n].docstring]
    assert undocumented == []


@pytest.mark.docs
def test_docs_site_builds_strict_and_offline(tmp_path: Path) -> None:
    _docs_tool("mkdocs")
    _docs_tool("mkdocstrings_handlers.python")
    site = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in vc.__all__:
        if name != "__version__":
            assert f'id="vizcallbacks.{name}"' in api, name
    # The README's set-up commands reach the site through snippets, not a copy.
    started = (site / "getting-started" / "index.html").read_text(encoding="utf-8")
    assert "experiments.fashion_cnn" in started and "--8&lt;--" not in started
    # Offline: no page loads anything from another host (fonts, scripts, style sheets).
    fetched = re.compile(r'<(?:link|script|img)[^>]+(?:href|src)="(?:https?:)?//', re.I)
    for html in site.rglob("*.html"):
        assert not fetched.search(html.read_text(encoding="utf-8")), html
