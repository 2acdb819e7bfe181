"""Real servers and a real browser: what the end-to-end tests and the README screenshots share.

- :class:`TensorBoardServer` starts ``tensorboard`` on 127.0.0.1 and a free port, as the README
  says (``--samples_per_plugin images=1000``), and reads its HTTP data endpoints.
- :func:`chromium_page` opens Debian's Chromium (``/usr/bin/chromium``) through Playwright, headless
  with background networking off and a fresh profile; Playwright's own browser download is never
  used.
- The ``tensorboard_*`` and ``mlflow_*`` functions drive the two UIs the way a user would (open
  the page, expand, scroll) and report what was really rendered: each image's natural size.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from experiments.servers import free_port

if TYPE_CHECKING:
    from playwright.sync_api import Frame, Locator, Page

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "DASHBOARD_LAUNCHER",
    "MATCHES_NO_METRIC",
    "ImageCard",
    "TensorBoardServer",
    "browser_missing",
    "chromium_page",
    "dashboard_frame",
    "mlflow_artifact_frame",
    "mlflow_chart_points",
    "mlflow_image_cards",
    "mlflow_open_run",
    "mlflow_run_url",
    "mlflow_search",
    "save_png",
    "screenshot",
    "tensorboard_open_images",
    "tensorboard_rendered_images",
]

CHROMIUM = os.environ.get("VIZ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
START_TIMEOUT = 180.0  # seconds; servers start slowly on two busy cores
PAGE_TIMEOUT_MS = 90_000


def browser_missing() -> str | None:
    """Why the browser checks cannot run here (no Chromium, no Playwright), or None."""
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright; no browser download needed)"
    return None


def get_json(url: str, timeout: float = 10.0) -> Any:
    """GET ``url`` and decode its JSON body."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


# TensorBoard -----------------------------------------------------------------------------------
# ``tensorboard`` with the vizcallbacks plugin added by hand: what its ``tensorboard_plugins`` entry
# point does once the package is installed, for a source tree that is not (or not this one).
DASHBOARD_LAUNCHER = """
from absl import app
from tensorboard import default, main_lib, program
from vizcallbacks.dashboard.plugin import VizCallbacksLoader
main_lib.global_init()
plugins = [p for p in default.get_plugins() if p is not VizCallbacksLoader]
board = program.TensorBoard(plugins=[*plugins, VizCallbacksLoader])
app.run(board.main, flags_parser=board.configure)
"""


class TensorBoardServer:
    """``tensorboard --logdir log_dir`` on 127.0.0.1 and a free port, in its own process group;
    ``dashboard=True`` loads the vizcallbacks plugin from this source tree."""

    def __init__(
        self, log_dir: str | Path, samples_per_plugin: str = "images=1000", dashboard: bool = False
    ) -> None:
        self.log_dir = Path(log_dir)
        self.samples_per_plugin = samples_per_plugin
        self.dashboard = dashboard
        self.port = free_port()
        self.log_path = Path(tempfile.mkdtemp(prefix="vizcallbacks-tensorboard-")) / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT) -> TensorBoardServer:
        """Start TensorBoard and return once its data endpoints answer; raise with its log."""
        launcher = ["-c", DASHBOARD_LAUNCHER] if self.dashboard else ["-m", "tensorboard.main"]
        command = [
            sys.executable,
            *launcher,
            "--logdir",
            str(self.log_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--samples_per_plugin",
            self.samples_per_plugin,
        ]
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"tensorboard exited early:\n{self.log_tail()}")
            try:
                self.data("images", "tags")
                return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"tensorboard did not answer within {timeout:g} s:\n{self.log_tail()}")

    def data(self, plugin: str, route: str, **query: str) -> Any:
        """JSON of ``/data/plugin/<plugin>/<route>?query``."""
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return get_json(f"{self.url}/data/plugin/{plugin}/{route}{suffix}")

    def wait_for_tags(
        self, plugin: str, tags: Iterable[str], run: str = ".", timeout: float = 60.0
    ) -> dict[str, Any]:
        """The run's tags for ``plugin`` once all of ``tags`` are loaded (TensorBoard reads the
        event files in the background); raise naming the missing ones after ``timeout``."""
        wanted = set(tags)
        deadline = time.monotonic() + timeout
        while True:
            served = self.data(plugin, "tags").get(run, {})
            missing = wanted - set(served)
            if not missing:
                return dict(served)
            if time.monotonic() > deadline:
                raise AssertionError(f"TensorBoard serves no {plugin} tags {sorted(missing)}")
            time.sleep(0.5)

    def image_steps(self, tag: str, run: str = ".") -> list[int]:
        """Steps of ``tag`` as the Images dashboard would list them."""
        return [entry["step"] for entry in self.data("images", "images", run=run, tag=tag)]

    def image_bytes(self, tag: str, step: int, run: str = ".") -> bytes:
        """The PNG that TensorBoard sends for ``tag`` at ``step``."""
        entries = self.data("images", "images", run=run, tag=tag)
        (query,) = [e["query"] for e in entries if e["step"] == step]
        with urllib.request.urlopen(
            f"{self.url}/data/plugin/images/individualImage?{query}", timeout=10
        ) as response:
            return bytes(response.read())

    def scalar_steps(self, tag: str, run: str = ".") -> list[int]:
        """Steps of the scalar ``tag`` (entries are ``[wall_time, step, value]``)."""
        return [int(row[1]) for row in self.data("scalars", "scalars", run=run, tag=tag)]

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Terminate TensorBoard's process group (kill after 10 s); safe to call twice."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def __enter__(self) -> TensorBoardServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.log_path.parent, ignore_errors=True)


# The browser -----------------------------------------------------------------------------------
@contextmanager
def chromium_page(
    width: int = 1400, height: int = 1000, scale: float = 1.0, init_script: str | None = None
) -> Iterator[Page]:
    """A page in headless Debian Chromium with a fresh profile, closed afterwards.

    ``init_script`` runs before each page's own scripts (to preset a UI's local storage).
    """
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="vizcallbacks-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=list(CHROMIUM_ARGS),
                viewport={"width": width, "height": height},
                device_scale_factor=scale,
            )
            try:
                context.set_default_timeout(PAGE_TIMEOUT_MS)
                if init_script:
                    context.add_init_script(init_script)
                page = context.pages[0] if context.pages else context.new_page()
                yield page
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def save_png(data: bytes, path: str | Path, max_bytes: int | None = None) -> Path:
    """Write PNG ``data`` to ``path``; above ``max_bytes``, reduce it to a 256-colour palette."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if max_bytes is not None and len(data) > max_bytes:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            palette = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
        buffer = io.BytesIO()
        palette.save(buffer, format="PNG", optimize=True)
        data = buffer.getvalue()
    path.write_bytes(data)
    return path


def screenshot(
    page: Page,
    path: str | Path,
    clip: tuple[float, float, float, float] | None = None,
    also_to: str | Path | None = None,
    max_bytes: int | None = None,
) -> Path:
    """Save the visible page (or the ``clip`` box x, y, width, height) as a PNG.

    ``also_to``: a directory that gets a copy (``$VIZ_DOCS_DIR`` in the tests).
    """
    if clip is None:
        data = page.screenshot()
    else:
        x, y, width, height = clip
        data = page.screenshot(clip={"x": x, "y": y, "width": width, "height": height})
    saved = save_png(data, path, max_bytes)
    if also_to:
        save_png(data, Path(also_to) / saved.name, max_bytes)
    return saved


def _reveal(page: Page, target: Locator, steps: int = 60) -> bool:
    """Bring ``target`` into view: at once if it is rendered, else scroll down from the top with
    the mouse wheel until it is (lazy UIs render only what is near the viewport, and MLflow
    unmounts what scrolled away)."""
    if not target.count():
        page.mouse.wheel(0, -100_000)
        page.wait_for_timeout(200)
        for _ in range(steps):
            if target.count():
                break
            page.mouse.wheel(0, 400)
            page.wait_for_timeout(150)
        else:
            return False
    target.first.scroll_into_view_if_needed()
    return True


def _natural_size(image: Locator, timeout: float) -> tuple[int, int]:
    """``(naturalWidth, naturalHeight)`` of ``image`` once decoded, (0, 0) if it never is."""
    deadline = time.monotonic() + timeout
    while True:
        if image.count():
            size = image.first.evaluate("i => [i.complete ? i.naturalWidth : 0, i.naturalHeight]")
            if size[0] > 0:
                return int(size[0]), int(size[1])
        if time.monotonic() > deadline:
            return 0, 0
        time.sleep(0.2)


# TensorBoard's Images dashboard (Polymer, inside shadow roots: Playwright's CSS pierces them) ----
def tensorboard_open_images(page: Page, url: str, tag_filter: str | None = None) -> None:
    """Open the Images dashboard (optionally with its tag filter, a regex) and wait for a card."""
    fragment = "#images"
    if tag_filter:
        fragment += "&tagFilter=" + urllib.parse.quote(tag_filter, safe="")
    if page.url.startswith(url):
        page.goto("about:blank")  # a new fragment alone would not reload the dashboard
    page.goto(url + "/" + fragment)
    page.wait_for_selector("tf-image-loader img")


def tensorboard_rendered_images(
    page: Page, tags: Iterable[str], timeout: float = 60.0
) -> dict[str, tuple[int, int]]:
    """Expand every collapsed tag group, scroll to each of ``tags``' cards and return the natural
    size of the image each one shows ((0, 0): no image; absent: no card).

    A group shows 12 cards per page: use a tag filter to reach more.
    """
    for heading in page.locator("tf-category-paginated-view button.heading").all():
        if heading.get_attribute("open-button") is None:
            heading.click()
    page.wait_for_timeout(500)
    wanted = set(tags)
    sizes: dict[str, tuple[int, int]] = {}
    loaders = page.locator("tf-image-loader")
    for i in range(loaders.count()):
        card = loaders.nth(i)
        tag = str(card.evaluate("e => e.tag"))
        if tag in wanted and tag not in sizes:  # with a filter, a tag also shows in its group
            card.scroll_into_view_if_needed()
            sizes[tag] = _natural_size(card.locator("img"), timeout)
    return sizes


# The vizcallbacks plugin: TensorBoard shows it in an iframe ---------------------------------------
def dashboard_frame(page: Page, url: str) -> Frame:
    """Open TensorBoard's "vizcallbacks" tab and return the plugin's frame once it has drawn
    (its ``body[data-vc-ready]``); raise if the tab is not listed."""
    page.goto(f"{url}/#vizcallbacks")
    page.get_by_text("vizcallbacks", exact=True).first.wait_for()  # the tab, in the header
    page.frame_locator("iframe").first.locator("body[data-vc-ready]").wait_for()
    (frame,) = [f for f in page.frames if "plugin_entry.html" in f.url]
    return frame


# MLflow's run page (React; charts and image cards render when scrolled near) ------------------
MLFLOW_UI_STATE = """
localStorage.setItem('mlflow.workflowType_v1', '"machine_learning"');
localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');
localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');
"""
"""Local storage for :func:`chromium_page`: MLflow's "Model training" mode (a new user clicks it
once; MLflow 3 opens in "GenAI" mode) and its assistant panel closed."""

_CARD = '[data-testid="experiment-view-compare-runs-card"]'


def mlflow_run_url(base: str, experiment_id: str, run_id: str, tab: str = "model-metrics") -> str:
    """MLflow 3's run page: ``#/experiments/<id>/runs/<run>/<tab>`` (``overview``,
    ``model-metrics`` with the charts and the image step sliders, ``artifacts``)."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}/{tab}"


def mlflow_open_run(page: Page, base: str, experiment_id: str, run_id: str) -> None:
    """Open the run's "Model metrics" tab and wait for its first card."""
    page.goto(mlflow_run_url(base, experiment_id, run_id))
    page.locator(_CARD).first.wait_for()
    size = page.viewport_size or {"width": 1400, "height": 1000}
    page.mouse.move(size["width"] / 2, size["height"] / 2)  # the wheel scrolls what is under it


def mlflow_artifact_frame(
    page: Page, base: str, experiment_id: str, run_id: str, name: str, ready: str
) -> Frame:
    """Open the run's Artifacts tab, click the HTML artifact ``name`` and return the frame MLflow
    shows it in, once ``ready`` (a CSS selector) is in it."""
    page.goto(mlflow_run_url(base, experiment_id, run_id, "artifacts"))
    page.get_by_text(name, exact=True).first.click()
    page.frame_locator("iframe").first.locator(ready).first.wait_for()
    (frame,) = [f for f in page.frames if f is not page.main_frame and f.locator(ready).count()]
    return frame


def _mlflow_card(page: Page, text: str, exact_title: bool) -> Locator:
    if exact_title:
        return page.locator(_CARD).filter(has=page.get_by_role("heading", name=text, exact=True))
    return page.locator(_CARD).filter(has_text=text)


MATCHES_NO_METRIC = "~no metric~"
"""A chart search that hides every metric chart: the search box filters metric charts only, so
what stays are the image cards."""


def mlflow_search(page: Page, text: str) -> None:
    """Type ``text`` into "Search metric charts" and let the page settle at its top."""
    page.get_by_placeholder("Search metric charts").fill(text)
    page.wait_for_timeout(800)
    page.mouse.wheel(0, -100_000)
    page.wait_for_timeout(200)


class ImageCard(NamedTuple):
    """What an MLflow image card shows: the image's natural size and how much of it is visible."""

    width: int
    height: int
    visible: float  # fraction of the image's height inside the card (0..1)


_VISIBLE_FRACTION = """img => {
    const box = img.getBoundingClientRect();
    let top = -Infinity, bottom = Infinity;
    for (let e = img.parentElement; e; e = e.parentElement) {
        const style = getComputedStyle(e);
        if (style.overflowY !== 'visible') {
            const r = e.getBoundingClientRect();
            top = Math.max(top, r.top); bottom = Math.min(bottom, r.bottom);
        }
        if (e.matches('[data-testid="experiment-view-compare-runs-card"]')) break;
    }
    const seen = Math.max(0, Math.min(bottom, box.bottom) - Math.max(top, box.top));
    return box.height > 0 ? seen / box.height : 0;
}"""


def mlflow_image_cards(
    page: Page, keys: Iterable[str], timeout: float = 60.0
) -> dict[str, ImageCard]:
    """Scroll the run page to each image key's card: the image it shows, and how much of it the
    card lets one see (the card has a fixed height, and MLflow lists the run's parameters above
    the image).

    Metric charts are hidden first (:data:`MATCHES_NO_METRIC`) so that only image cards are
    between the top and the wanted card.
    """
    mlflow_search(page, MATCHES_NO_METRIC)
    cards: dict[str, ImageCard] = {}
    for key in keys:
        card = _mlflow_card(page, key, exact_title=True)
        if not _reveal(page, card):
            continue
        image = card.first.locator("img")
        width, height = _natural_size(image, timeout)
        visible = float(image.first.evaluate(_VISIBLE_FRACTION)) if width else 0.0
        cards[key] = ImageCard(width, height, visible)
    return cards


def mlflow_chart_points(page: Page, keys: Iterable[str], search: str = "") -> dict[str, int]:
    """Search the metric charts for ``search``, then count each metric chart's plotted points.

    A chart is found by its legend, ``<run name> (<metric key>)``; charts are drawn only near
    the viewport, so each is scrolled into view first.
    """
    mlflow_search(page, search)
    points: dict[str, int] = {}
    for key in keys:
        card = _mlflow_card(page, f"({key})", exact_title=False)
        if not _reveal(page, card):
            continue
        drawn = card.first.locator(".scatterlayer path.point")
        deadline = time.monotonic() + 30
        while drawn.count() == 0 and time.monotonic() < deadline:
            page.wait_for_timeout(200)
        points[key] = drawn.count()
    return points
