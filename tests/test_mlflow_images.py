"""Images reach MLflow as our PNG bytes, not re-encoded, under the names ``log_image`` uses, with
its ``+compressed.webp`` previews and the ``mlflow.loggedImages`` tag: checked against the real
``log_image`` of the installed MLflow (an upgrade that renames its files fails here), after a fit
against a real ``mlflow server``, when the store refuses the batch upload, and when an upload
arrives although its call failed. Real SQLite stores and a real server, no mocks of MLflow.
"""

from __future__ import annotations

import io
import logging
import posixpath
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from PIL import Image as PILImage

from tests.mlflow_server import MlflowServer
from tests.test_mlflow_writer import fit, grid, image_steps, only_run
from vizcallbacks.mlflow_store.image_files import (
    image_artifact_name,
    images_on_server,
    logged_images,
    parse_image_name,
    thumbnail_name,
)
from vizcallbacks.records import Image
from vizcallbacks.writers.mlflow import MLflowWriter
from vizcallbacks.writers.mlflow import images as images_module
from vizcallbacks.writers.mlflow.images import LOGGED_IMAGES_TAG, image_uuid, thumbnail

pytestmark = pytest.mark.usefixtures("no_mlflow_env")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.mark.parametrize(
    ("key", "step", "timestamp"),
    [
        ("activations/conv_a", 0, 1_700_000_000_123),
        ("probe 2/mean_activation/block1.conv", 12345, 1),
        ("a", -1, 0),
    ],
)
def test_image_names_round_trip_through_the_parser(key: str, step: int, timestamp: int) -> None:
    uid = image_uuid("run", key, step, timestamp)
    assert UUID4.match(uid) and uid == image_uuid("run", key, step, timestamp)
    assert uid != image_uuid("run", key, step + 1, timestamp)
    name = image_artifact_name(key, step, timestamp, uid)
    assert name.startswith("images/") and "/" not in name.removeprefix("images/")
    parsed = parse_image_name(name)
    assert parsed is not None and parsed[:3] == (key, step, timestamp) and parsed.path == name
    assert parse_image_name(thumbnail_name(name)) is None  # previews are not images
    assert parse_image_name(name.replace("+", "%")) is not None  # MLflow's older separator


@pytest.mark.parametrize("channels", [3, 1])
def test_names_and_preview_match_what_log_image_writes(tmp_path: Path, channels: int) -> None:
    """The real log_image, once, into a local store: our names and preview bytes are its own."""
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = client.create_run(client.create_experiment("names")).info.run_id
    record = Image("activations/conv_a", smooth_picture(300, 420)[..., :channels])
    key, step, timestamp = record.tag, 7, 1_700_000_000_123
    with PILImage.open(io.BytesIO(record.png)) as picture:
        client.log_image(run_id, picture, key=key, step=step, timestamp=timestamp)
    names = sorted(info.path for info in client.list_artifacts(run_id, "images"))
    assert len(names) == 2, names
    original, preview = names[1], names[0]  # "...+compressed.webp" sorts before "....png"
    uid = posixpath.basename(original).removesuffix(".png").rsplit("+", 1)[1]
    assert UUID4.match(uid), original
    assert original == image_artifact_name(key, step, timestamp, uid)
    assert preview == thumbnail_name(original)
    assert list(logged_images(client, run_id)) == [(key, step, timestamp, original)]
    webp = Path(client.download_artifacts(run_id, preview, str(tmp_path))).read_bytes()
    with (
        PILImage.open(io.BytesIO(webp)) as theirs,
        PILImage.open(io.BytesIO(thumbnail(record.pixels))) as ours,
    ):
        assert ours.format == theirs.format == "WEBP" and ours.size == theirs.size
        diff = np.abs(np.asarray(ours.convert("RGB"), int) - np.asarray(theirs.convert("RGB"), int))
    assert diff.mean() < 6, diff.mean()  # the same preview to the eye, made more cheaply
    assert client.get_run(run_id).data.tags[LOGGED_IMAGES_TAG] == "True"


def smooth_picture(height: int, width: int) -> np.ndarray:
    """A uint8 RGB picture of smooth gradients, the kind lossy previews keep faithfully."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    return (np.stack([x, y, (x + y) / 2], axis=-1) * 255).astype(np.uint8)


def test_small_pictures_keep_their_size_in_the_preview() -> None:
    """log_image would enlarge a 20x12 picture to 256 pixels; the browser does that as well."""
    picture = smooth_picture(12, 20)
    with PILImage.open(io.BytesIO(thumbnail(Image("mean_activation/c", picture).pixels))) as ours:
        assert ours.format == "WEBP" and ours.size == (20, 12)
        assert np.abs(np.asarray(ours.convert("RGB"), int) - picture).mean() < 6


class RecordingWriter(MLflowWriter):
    """An MLflowWriter that keeps the PNG bytes of every Image record it is given."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pngs: dict[tuple[str, int], bytes] = {}

    def write(self, records: Any, step: int) -> None:
        self.pngs.update({(r.tag, int(step)): r.png for r in records if isinstance(r, Image)})
        super().write(records, step)


def assert_images_as_encoded(
    client: MlflowClient, run_id: str, pngs: dict[tuple[str, int], bytes], tmp_path: Path
) -> None:
    """Every image file is one the writer was given, byte for byte, with its preview beside it."""
    paths = {info.path for info in client.list_artifacts(run_id, "images")}
    images = list(logged_images(client, run_id))
    assert sorted((i.key, i.step) for i in images) == sorted(pngs)  # each once, none missing
    for image in images:
        assert thumbnail_name(image.path) in paths, image.path
    assert len(paths) == 2 * len(images), sorted(paths)  # no stray preview
    for image in images[:: max(1, len(images) // 4)]:  # a few, downloaded: the bytes we encoded
        local = Path(client.download_artifacts(run_id, image.path, str(tmp_path)))
        assert local.read_bytes() == pngs[(image.key, image.step)], image.path
    assert client.get_run(run_id).data.tags[LOGGED_IMAGES_TAG] == "True"


def test_a_fit_uploads_our_png_bytes_with_previews_and_the_tag(
    mlflow_server: MlflowServer, digits: Any, tmp_path: Path
) -> None:
    writer = RecordingWriter(
        mlflow_server.uri, experiment_name="as-encoded", spool_dir=tmp_path / "spool"
    )
    fit(digits, writer, epochs=2)
    writer.close()
    client = MlflowClient(mlflow_server.uri)
    run_id = only_run(client, "as-encoded").info.run_id
    assert len(writer.pngs) > 10
    assert_images_as_encoded(client, run_id, writer.pngs, tmp_path)


def write_images(writer: MLflowWriter, steps: int, per_step: int = 3) -> None:
    writer.check()
    for step in range(steps):
        records = [Image(f"activations/layer_{i}", grid(10 * step + i)) for i in range(per_step)]
        writer.write(records, step)
        writer.flush()


def test_the_tag_is_set_once_per_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    set_tag = MlflowClient.set_tag

    def counting(self: MlflowClient, run_id: str, key: str, value: Any, **kw: Any) -> Any:
        calls.append(key)
        return set_tag(self, run_id, key, value, **kw)

    monkeypatch.setattr(MlflowClient, "set_tag", counting)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    writer = RecordingWriter(uri, experiment_name="once", spool_dir=tmp_path / "spool")
    write_images(writer, steps=4)
    writer.close()
    assert calls.count(LOGGED_IMAGES_TAG) == 1, calls
    client = MlflowClient(uri)
    assert_images_as_encoded(client, only_run(client, "once").info.run_id, writer.pngs, tmp_path)


def upload_as_to_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send a local store's images through ``log_artifacts`` in staged batches, the path a
    tracking server's images take, instead of writing them into its artifact folder."""
    monkeypatch.setattr(images_module, "local_artifact_dir", lambda client, run_id: None)


def test_a_refused_batch_upload_falls_back_to_log_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(self: MlflowClient, run_id: str, local_dir: str, artifact_path: Any = None) -> None:
        raise MlflowException("no directory uploads here", error_code=INVALID_PARAMETER_VALUE)

    monkeypatch.setattr(MlflowClient, "log_artifacts", refuse)
    upload_as_to_a_server(monkeypatch)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    writer = MLflowWriter(uri, experiment_name="fallback", spool_dir=tmp_path / "spool")
    write_images(writer, steps=3)
    writer.close()
    client = MlflowClient(uri)
    run_id = only_run(client, "fallback").info.run_id
    assert image_steps(client, run_id) == {f"activations/layer_{i}": [0, 1, 2] for i in range(3)}
    told = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("one by one with log_image" in m for m in told) == 1, told
    assert not (tmp_path / "spool").exists()


def test_an_upload_that_arrived_although_its_call_failed_is_kept_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server stored the images, then the answer was lost: the retry recognises them."""
    log_artifacts = MlflowClient.log_artifacts
    lost: list[str] = []

    def upload_then_fail(self: MlflowClient, run_id: str, local_dir: str, path: Any = None) -> None:
        log_artifacts(self, run_id, local_dir, path)
        if Path(local_dir).name == "originals" and len(lost) < 2:
            lost.append(local_dir)
            raise ConnectionError("Connection aborted: the answer was lost")

    monkeypatch.setattr(MlflowClient, "log_artifacts", upload_then_fail)
    upload_as_to_a_server(monkeypatch)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    writer = RecordingWriter(uri, experiment_name="lost", spool_dir=tmp_path / "spool")
    write_images(writer, steps=3)
    writer.close()
    assert lost  # the failure did happen
    client = MlflowClient(uri)
    run_id = only_run(client, "lost").info.run_id
    assert len(images_on_server(client, run_id)) == 9
    assert_images_as_encoded(client, run_id, writer.pngs, tmp_path)


def test_names_do_not_depend_on_the_attempt() -> None:
    """A replay after a crash writes the same file names: it overwrites, never adds a copy."""
    first = image_artifact_name("k", 1, 2, image_uuid("r", "k", 1, 2))
    assert first == image_artifact_name("k", 1, 2, image_uuid("r", "k", 1, 2))
    assert first != image_artifact_name("k", 1, 2, image_uuid("other run", "k", 1, 2))
