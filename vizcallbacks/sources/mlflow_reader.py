"""An MLflow run read back for the report: its images (``log_image``'s names), its metrics, the
dead-channel texts (``text/<tag>/step_*.md`` artifacts) and the loggers' options (run tags)."""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
from pathlib import Path
from typing import Any

from vizcallbacks.mlflow_store.image_files import IMAGES_DIR
from vizcallbacks.sources.mlflow_runs import metric_history, open_run
from vizcallbacks.sources.run import (
    DEAD_TEXT,
    LAYERS_PARAM,
    PROBES_PARAM,
    RunData,
    is_logged_by_us,
)
from vizcallbacks.tags import option_key

__all__ = ["MLflowRunReader"]

_TEXT_STEP = re.compile(r"step_(\d+)\.md$")


class MLflowRunReader:
    """One run of an MLflow store, downloaded once into a temporary folder, read as
    :class:`RunData`; :meth:`blob` returns an image's bytes by its artifact path."""

    def __init__(self, client: Any, run: str) -> None:
        logged = open_run(client, run)
        self._tmp = tempfile.TemporaryDirectory(prefix="vizcallbacks-report-")
        self.root = Path(self._tmp.name)
        present = {info.path for info in client.list_artifacts(logged.run_id)}
        if "text" in present:
            present |= {info.path for info in client.list_artifacts(logged.run_id, "text")}
        for path in (IMAGES_DIR, f"text/{DEAD_TEXT}"):
            if path in present:
                client.download_artifacts(logged.run_id, path, str(self.root))
        data = RunData(name=logged.label)
        for key in sorted(logged.images):
            data.images[key] = dict(sorted(logged.images[key].items()))
        for key in sorted(logged.metrics):
            if is_logged_by_us(key):
                steps, values = metric_history(client, logged.run_id, key)
                data.scalars[key] = list(zip(steps.tolist(), values.tolist(), strict=True))
        for folder in sorted((self.root / "text").glob("**/")):
            texts = {
                int(m.group(1)): path.read_text("utf-8", "replace")
                for path in folder.iterdir()
                if (m := _TEXT_STEP.search(path.name))
            }
            if texts:
                data.texts[folder.relative_to(self.root / "text").as_posix()] = texts
        run_tags = client.get_run(logged.run_id).data.tags
        for name in (LAYERS_PARAM, PROBES_PARAM):
            value = run_tags.get(option_key(name))
            with contextlib.suppress(ValueError):  # a list cut short (too long for a tag): no order
                data.params[name] = json.loads(value) if value else None
        self.run = data

    def runs(self) -> list[RunData]:
        """The one run, as a list like :meth:`LogdirReader.runs`."""
        return [self.run]

    def blob(self, key: str) -> bytes:
        """The PNG stored at artifact path ``key`` (downloaded with the run)."""
        return (self.root / key).read_bytes()

    def close(self) -> None:
        """Remove the downloaded files; safe to call twice."""
        self._tmp.cleanup()
