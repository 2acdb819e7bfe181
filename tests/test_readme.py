"""The README tells the truth: its example runs, and CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

import keras
import pytest

from tests.events import read_events

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _bash_blocks(section: str) -> list[str]:
    text = README.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", text, re.S)


def test_two_setup_commands_and_ci_runs_the_test_one() -> None:
    demo, tests = _bash_blocks("Set up on a fresh machine")
    assert "experiments.fashion_cnn" in demo and "pytest" in tests
    assert tests in (ROOT / ".ci" / "run").read_text()


def test_readme_is_a_short_guide_that_opens_with_the_setup_commands() -> None:
    assert len(README.splitlines()) <= 300, "move the detail to a page under docs/"
    first_two = re.findall(r"```[a-z]*\n(.*?)\n```", README, re.S)[:2]
    assert first_two == _bash_blocks("Set up on a fresh machine")


def test_readme_links_lead_to_files() -> None:
    links = re.findall(r"\]\((?!https?://|#)([^)#]+)", README)
    assert "docs/architecture.md" in links
    assert [link for link in links if not (ROOT / link).is_file()] == []


@pytest.mark.slow
def test_readme_example_runs(tmp_path: Path, monkeypatch, capsys) -> None:
    code = re.search(r"<!-- readme-example -->\n```python\n(.*?)\n```", README, re.S)
    assert code is not None
    monkeypatch.chdir(tmp_path)
    keras.config.enable_interactive_logging()  # as in a terminal: messages go to stdout
    namespace: dict = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    first_conv = namespace["first_conv"]
    # 64 maps of 26x26, enlarged twice, in an 8x8 grid with 1-pixel separators.
    out = capsys.readouterr().out
    assert f"{first_conv} (423, 423, 3) uint8" in out
    # Three callbacks share the writer and each closes it; the viewing command is said once.
    assert out.count("tensorboard --logdir logs/readme --samples_per_plugin images=1000") == 1
    events = read_events(tmp_path / "logs" / "readme")
    assert sorted(events[f"activations/{first_conv}"]) == [0, 1, 2]
    assert sorted(events[f"filters/{first_conv}"]) == [0, 1, 2]
    gradcam = [t for t in events if t.startswith("gradcam/")]
    assert len(gradcam) == 1 and sorted(events[gradcam[0]]) == [0, 1, 2]
