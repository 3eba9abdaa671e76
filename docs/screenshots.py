"""The README's screenshots of the dashboard, made from a real sweep: ``python docs/screenshots.py``.

Runs a 30-trial grid sweep of a small model's accuracy (learning rates on a
log scale, depths, two models; ``acc`` and ``loss`` saved every epoch) into a
temporary local store, serves its dashboard, and photographs it in Debian's
headless Chromium (as the browser tests drive it):

- ``docs/dashboard.png``: the Trials tab, four trials selected;
- ``docs/board-views.png``: parallel coordinates of the parameters and result, scatter
  (log learning rate against the last loss, coloured by depth), the compare table
  and the metrics as small multiples, smoothed, in a 2 × 2 grid.

Needs ``chromium``, ``chromium-driver``, selenium and Pillow.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPOSITORY))  # this tree's daskperiment, and the benchmark's browser

from benchmarks.board import browser, wait_for  # noqa: E402
DOCS = REPOSITORY / "docs"
SELECTED = (7, 12, 20, 25)
WINDOW = (1440, 1300)
PANEL = (0, 250, 1390, 900)
"""Where a view is on the page: below the header, summary and selection line (the same on every tab)."""

DEEP = """
const deep = (root, selector, found) => {
  for (const el of root.querySelectorAll('*')) {
    if (el.matches(selector)) found.push(el);
    if (el.shadowRoot) deep(el.shadowRoot, selector, found);
  }
  return found;
};
"""
CLICK_TAB = DEEP + """
const tab = deep(document, '.bk-tab', []).find(t => t.textContent.trim() === arguments[0]);
if (tab) tab.click();
return !!tab;
"""
ROW_SHOWN = DEEP + """
return deep(document, '.slick-row', []).some(r => {
  const cells = r.querySelectorAll('.slick-cell');
  return cells.length > 1 && cells[1].textContent.trim() === arguments[0];
});
"""
SELECT_TRIALS = """
const source = Bokeh.documents[0].get_model_by_name('history_table').source;
const trials = Array.from(source.data.get ? source.data.get('trial') : source.data['trial']);
source.selected.indices = arguments[0].map(t => trials.indexOf(t));
"""
SET = """
const model = Bokeh.documents[0].get_model_by_name(arguments[0]);
model[arguments[1]] = arguments[2];
"""
COLUMN_LENGTH = """
const model = Bokeh.documents[0].get_model_by_name(arguments[0]);
const column = model && (model.data.get ? model.data.get(arguments[1]) : model.data[arguments[1]]);
return column ? column.length : 0;
"""
TEXT = DEEP + "return deep(document, '*', []).map(e => e.shadowRoot ? e.shadowRoot.textContent : '').join(' ');"


def accuracy(lr: float, depth: int, model: str) -> float:
    """What the sweep's trial ``(lr, depth, model)`` reaches: best near lr = 0.03, deeper and mlp a little better."""
    return round(0.93 - 0.09 * (math.log10(lr) + 1.5) ** 2 / 2 + 0.015 * depth + (0.02 if model == "mlp" else 0.0), 4)


def run_sweep(folder: Path) -> None:
    """A 30-trial grid sweep of experiment ``mnist_sweep`` into a local store in ``folder``, with notes and tags."""
    import numpy as np

    from daskperiment import Experiment

    ex = Experiment("mnist_sweep", backend=folder / "mnist_sweep", script_mode=False)
    lr, depth, model = ex.parameter("lr"), ex.parameter("depth"), ex.parameter("model")

    @ex.result
    def train(lr: float, depth: int, model: str) -> float:
        final = accuracy(lr, depth, model)
        noise = np.random.default_rng(int(lr * 1e4) + 10 * depth + len(model))
        speed = 0.12 + 0.05 * depth
        for epoch in range(30):
            reached = final * (1 - math.exp(-speed * (epoch + 1)))
            ex.save_metric("acc", epoch, reached + noise.normal(0, 0.006))
            ex.save_metric("loss", epoch, max(0.02, 1.1 - reached + noise.normal(0, 0.01)))
        return final

    ex.sweep(train(lr, depth, model), grid={"lr": [1e-4, 1e-3, 1e-2, 1e-1, 1.0], "depth": [1, 2, 3],
                                             "model": ["cnn", "mlp"]}, name="lr-depth-grid", scheduler="sync")
    ex.set_direction("maximize")
    ex.set_note(12, "best of the grid: keep as baseline")
    ex.add_tags(12, "baseline")
    ex.add_tags(25, "diverged")
    ex.set_note(25, "lr=1 diverges after a few epochs")


def settle(driver: Any, seconds: float = 1.5) -> None:
    """Let the page draw (the server answers, then the canvas paints)."""
    time.sleep(seconds)
    driver.execute_script("return document.readyState")


def shot(driver: Any, path: Path, height: int | None = None) -> Any:
    """A screenshot of the page (its top ``height`` pixels), as a Pillow image, also saved at ``path`` if given."""
    from io import BytesIO

    from PIL import Image

    image = Image.open(BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    if height is not None:
        image = image.crop((0, 0, image.width, height))
    if path is not None:
        image.save(path, optimize=True)
    return image


def tab(driver: Any, title: str) -> None:
    wait_for(lambda: driver.execute_script(CLICK_TAB, title), f"tab {title}")


def views(driver: Any) -> list[Any]:
    """The four sweep views, each cropped below the header."""
    images = []
    tab(driver, "Parallel")
    wait_for(lambda: driver.execute_script(COLUMN_LENGTH, "parallel_lines", "trial") == 30, "the parallel lines")
    settle(driver)
    images.append(shot(driver, None).crop(PANEL))
    tab(driver, "Scatter")
    wait_for(lambda: driver.execute_script(COLUMN_LENGTH, "scatter_dots", "x") == 30, "the scatter")
    driver.execute_script(SET, "scatter_y", "value", json.dumps(["metric", "loss", "last"]))
    driver.execute_script(SET, "scatter_color", "value", json.dumps(["column", "depth"]))
    driver.execute_script(SET, "scatter_log", "active", [0])
    wait_for(lambda: "loss · last" in driver.execute_script(TEXT), "the scatter of the last loss")
    settle(driver, 2.5)
    images.append(shot(driver, None).crop(PANEL))
    tab(driver, "Compare")
    wait_for(lambda: "trial 25" in driver.execute_script(TEXT), "the compare table")
    settle(driver)
    images.append(shot(driver, None).crop(PANEL))
    tab(driver, "Metrics")
    wait_for(lambda: driver.execute_script(COLUMN_LENGTH, "metric_lines_source", "trial") == len(SELECTED),
             "the metric curves")
    driver.execute_script(SET, "smoothing", "value", 0.6)
    driver.execute_script(SET, "smoothing", "value_throttled", 0.6)
    settle(driver, 2.5)
    images.append(shot(driver, None).crop(PANEL))
    return images


def grid(images: list[Any], path: Path) -> None:
    """The images in a 2 × 2 grid, each half size, with a thin border between them."""
    from PIL import Image

    width, height = images[0].width // 2, images[0].height // 2
    sheet = Image.new("RGB", (2 * width + 6, 2 * height + 6), "#d9e2ec")
    for index, image in enumerate(images):
        small = image.resize((width, height), Image.LANCZOS)
        sheet.paste(small, ((index % 2) * (width + 6), (index // 2) * (height + 6)))
    sheet.save(path, optimize=True)


def main() -> int:
    from daskperiment.board import start

    with tempfile.TemporaryDirectory(prefix="screenshots-") as scratch:
        folder = Path(scratch)
        run_sweep(folder)
        server = start("mnist_sweep", folder, port=0)
        driver = browser(WINDOW)
        try:
            driver.get(server.url)
            wait_for(lambda: driver.execute_script(ROW_SHOWN, "30"), "the table")
            driver.execute_script(SELECT_TRIALS, list(SELECTED))
            wait_for(lambda: "Selected trials: 7, 12, 20, 25" in driver.execute_script(TEXT), "the selection")
            settle(driver, 2.5)
            shot(driver, DOCS / "dashboard.png", height=900)
            grid(views(driver), DOCS / "board-views.png")
        finally:
            driver.quit()
            server.stop()
    print(f"wrote {DOCS / 'dashboard.png'} and {DOCS / 'board-views.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
