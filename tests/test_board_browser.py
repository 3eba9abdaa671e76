"""The dashboard in a real headless Chromium, against a real Bokeh server and store."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from test_board import HTML_NAME, WEIGHTS, keep_files

from daskperiment import Experiment
from daskperiment.board import BoardServer, start
from daskperiment.records import RecordBatch

pytestmark = pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="needs Debian's chromium and chromium-driver (installed by .ci/run)",
)

XSS = "<script>alert(1)</script>"
XSS_METRIC = "<img src=x onerror=alert(2)>"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
WAIT_SECONDS = 30.0
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--window-size=1440,1000",
)

# Text and elements inside the shadow roots Bokeh renders its views into.
_DEEP_JS = """
const deep = (root, selector, found) => {
  for (const el of root.querySelectorAll('*')) {
    if (el.matches(selector)) found.push(el);
    if (el.shadowRoot) deep(el.shadowRoot, selector, found);
  }
  return found;
};
"""
DEEP_TEXT = _DEEP_JS + """
const texts = [];
for (const el of deep(document, '*', [])) {
  for (const node of el.childNodes) if (node.nodeType === Node.TEXT_NODE) texts.push(node.textContent);
  if (el.shadowRoot) for (const node of el.shadowRoot.childNodes)
    if (node.nodeType === Node.TEXT_NODE) texts.push(node.textContent);
}
return texts.join('\\n');
"""
ROW_CHECKBOX = _DEEP_JS + """
for (const row of deep(document, '.slick-row', [])) {
  const cells = row.querySelectorAll('.slick-cell');
  if (cells.length > 1 && cells[1].textContent.trim() === arguments[0])
    return cells[0].querySelector('input[type=checkbox]');
}
return null;
"""
TAB = _DEEP_JS + """
return deep(document, '.bk-tab', []).find(tab => tab.textContent.trim() === arguments[0]) || null;
"""
MODEL_DATA = """
const doc = window.Bokeh && Bokeh.documents[0];
const model = doc && doc.get_model_by_name(arguments[0]);
return model ? Array.from(model.data.get ? model.data.get(arguments[1]) : model.data[arguments[1]]) : null;
"""
SCRIPT_ELEMENTS = _DEEP_JS + "return deep(document, 'script', []).map(s => s.textContent).join('\\n');"


@pytest.fixture(scope="module")
def experiment_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with experiment ``browser``: five trials with metrics, code that changed, one failure."""
    folder = tmp_path_factory.mktemp("browser-store")
    ex = Experiment("browser", backend=folder / "browser")
    lr, model = ex.parameter("lr"), ex.parameter("model", default="cnn")

    @ex.result
    def train(lr: float, model: str) -> float:
        loss = 1.0
        for epoch in range(20):
            loss *= 1 - lr
            ex.save_metric("loss", epoch, loss)
        return loss

    for value in (0.1, 0.2):
        ex.set_parameters(lr=value)
        train(lr, model).compute()

    @ex.result  # type: ignore[no-redef]
    def train(lr: float, model: str) -> float:
        loss = 2.0
        for epoch in range(20):
            loss *= 1 - lr / 2
            ex.save_metric("loss", epoch, loss)
            ex.save_metric(XSS_METRIC, epoch, -loss)
        if model == "broken":
            raise ValueError("<b>diverged</b>")
        return loss

    for value, name in ((0.3, "mlp"), (0.4, XSS), (0.5, "broken")):
        ex.set_parameters(lr=value, model=name)
        try:
            train(lr, model).compute()
        except ValueError:
            pass
    ex.backend.close()
    Experiment._instances.clear()
    return folder


@pytest.fixture(scope="module")
def board(experiment_store: Path) -> Iterator[BoardServer]:
    """The dashboard of experiment ``browser`` on a free port."""
    server = start("browser", experiment_store, port=0)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium driven by chromedriver (Debian's, never a downloaded one)."""
    os.environ.setdefault("SE_AVOID_STATS", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(service=service, options=options)
    yield driver
    driver.quit()


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    """Poll ``condition`` until it is truthy (bounded wait), and return its value."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def page_text(driver: Any) -> str:
    """All the text the page shows, shadow roots included."""
    return driver.execute_script(DEEP_TEXT)


def wait_for_text(driver: Any, needle: str) -> str:
    """The page's text once it contains ``needle``."""
    return wait_for(lambda: (text := page_text(driver)) and needle in text and text, repr(needle))


def screenshot(driver: Any, name: str) -> Path:
    """Save a screenshot under test-artifacts/ and check that it shows something."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    with Image.open(path) as image:
        colors = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50, f"{path} looks blank"
    background = max(count for count, _ in colors)
    assert background < 0.99 * sum(count for count, _ in colors), f"{path} looks blank"
    return path


@pytest.fixture(scope="module")
def page(board: BoardServer, browser: Any) -> Any:
    """The dashboard, loaded."""
    browser.get(board.url)
    wait_for(lambda: browser.execute_script(ROW_CHECKBOX, "5") and "lr" in page_text(browser),
             "the dashboard to load")
    return browser


def open_tab(driver: Any, title: str) -> None:
    wait_for(lambda: driver.execute_script(TAB, title), f"tab {title!r}").click()


def test_table_lists_the_trials(page: Any) -> None:
    text = wait_for_text(page, "mlp")
    for expected in ("Trial ID", "lr", "model", "0.1", "0.2", "0.3", "mlp", "ValueError(<b>diverged</b>)"):
        assert expected in text
    for trial in ("1", "2", "3", "4", "5"):
        assert page.execute_script(ROW_CHECKBOX, trial) is not None
    assert "Success rate" in text and "80%" in text
    screenshot(page, "board-history.png")


def test_script_parameter_value_renders_as_text(page: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    open_tab(page, "Metrics")
    text = wait_for_text(page, XSS_METRIC)
    open_tab(page, "Trials")
    assert XSS in text  # the literal texts are shown...
    assert XSS_METRIC in text  # (an option of the metric chooser)
    with pytest.raises(NoAlertPresentException):
        _ = page.switch_to.alert  # ...and never run
    assert "alert(1)" not in page.execute_script(SCRIPT_ELEMENTS)
    assert page.execute_script(_DEEP_JS + "return deep(document, 'img[src=x], b', []).length") == 0


def test_selecting_two_trials_shows_their_curves_and_code_diff(page: Any) -> None:
    from selenium.webdriver.support.select import Select

    for trial in ("2", "3"):
        page.execute_script(ROW_CHECKBOX, trial).click()
    wait_for_text(page, "Selected trials: 2, 3")
    open_tab(page, "Metrics")
    metric = wait_for(lambda: page.execute_script(_DEEP_JS + "return deep(document, 'select', []).find("
                                                  "s => Array.from(s.options).some(o => o.text === 'loss'))"),
                      "the metrics to choose from")
    chosen = Select(metric)
    chosen.select_by_visible_text("loss")  # first: an empty choice would bring the default metrics back
    for option in chosen.all_selected_options:
        if option.text != "loss":
            chosen.deselect_by_visible_text(option.text)
    wait_for(lambda: page.execute_script(MODEL_DATA, "metric_lines_source", "label") == ["trial 2", "trial 3"],
             "the curves of trials 2 and 3")
    wait_for_text(page, "loss of the selected trials: 2, 3")
    screenshot(page, "board-metrics.png")
    open_tab(page, "Code")
    text = wait_for_text(page, "trial 2 → trial 3")
    assert "loss = 1.0" in text and "loss = 2.0" in text  # both sides of the changed line
    screenshot(page, "board-code.png")
    open_tab(page, "Environment")
    wait_for_text(page, "Changes from trial 2 to 3")
    screenshot(page, "board-environment.png")
    open_tab(page, "Trials")


GUTTER_LINES = _DEEP_JS + """
return deep(document, 'table.diff td.n', []).filter(td => td.textContent).map(td => {
  const range = document.createRange();
  range.selectNodeContents(td);
  return [td.textContent, range.getClientRects().length];
});
"""


def test_side_by_side_diff_keeps_line_numbers_on_one_line(page: Any) -> None:
    wait_for_text(page, "Selected trials: 2, 3")
    open_tab(page, "Code")
    wait_for_text(page, "trial 2 → trial 3")
    gutter = wait_for(lambda: page.execute_script(GUTTER_LINES), "the diff's line numbers")
    assert max(int(number) for number, _ in gutter) >= 10
    assert [number for number, lines in gutter if lines != 1] == []  # none wraps
    open_tab(page, "Trials")


def test_trial_added_by_another_process_appears(page: Any, experiment_store: Path,
                                                run_python: Callable[..., Any]) -> None:
    code = f"""
import pathlib, daskperiment
ex = daskperiment.Experiment("browser", backend=pathlib.Path({str(experiment_store / 'browser')!r}))
lr, model = ex.parameter("lr"), ex.parameter("model", default="cnn")

@ex.result
def train(lr, model):
    ex.save_metric("loss", 0, lr)
    return lr

ex.set_parameters(lr=0.77, model="from-another-process")
train(lr, model).compute()
"""
    open_tab(page, "Trials")
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    wait_for_text(page, "from-another-process")
    assert page.execute_script(ROW_CHECKBOX, "6") is not None
    assert "6 trials" in page_text(page)
    screenshot(page, "board-live.png")


# -- the Artifacts tab, on its own experiment (in a second browser tab; keep these tests last) ----------
IMAGES = _DEEP_JS + """
return deep(document, 'img', []).map(img => ({alt: img.alt, complete: img.complete, width: img.naturalWidth}));
"""
FETCH_LINK = _DEEP_JS + """
const done = arguments[arguments.length - 1];
const link = deep(document, 'a[download]', []).find(a => a.closest('tr')
  && a.closest('tr').textContent.includes(arguments[0]));
fetch(link.href)
  .then(r => r.arrayBuffer().then(b => done({status: r.status, type: r.headers.get('content-type'),
                                             bytes: Array.from(new Uint8Array(b))})))
  .catch(e => done({error: String(e)}));
"""


@pytest.fixture(scope="module")
def files_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with experiment ``files`` after :func:`test_board.keep_files`."""
    folder = tmp_path_factory.mktemp("files-store")
    ex = Experiment("files", backend=folder / "files")
    keep_files(ex, 24)
    ex.backend.close()
    Experiment._instances.clear()
    return folder


def board_in_new_tab(browser: Any, experiment_id: str, store: Path, last_trial: str) -> Iterator[Any]:
    """The dashboard of ``experiment_id``, loaded in a new browser tab once ``last_trial`` is listed."""
    server = start(experiment_id, store, port=0)
    first = browser.current_window_handle
    browser.switch_to.new_window("tab")
    browser.get(server.url)
    wait_for(lambda: browser.execute_script(ROW_CHECKBOX, last_trial), "the dashboard to load")
    yield browser
    browser.close()
    browser.switch_to.window(first)
    server.stop()


@pytest.fixture(scope="module")
def files_page(files_store: Path, browser: Any) -> Iterator[Any]:
    """The dashboard of experiment ``files``, loaded in a new browser tab."""
    yield from board_in_new_tab(browser, "files", files_store, "1")


def test_artifacts_tab_lists_files_shows_images_and_downloads(files_page: Any) -> None:
    open_tab(files_page, "Artifacts")
    text = wait_for_text(files_page, "Files kept by trial 2, the latest")
    assert "Cached: prepare (trial 1)" in text
    open_tab(files_page, "Trials")
    files_page.execute_script(ROW_CHECKBOX, "1").click()
    open_tab(files_page, "Artifacts")
    text = wait_for_text(files_page, "Files kept by the selected trials: 1")
    for expected in ("Trial 1 · 5 files", "square.png", "figure.svg", "model.bin", "output", "2.0 KiB", "prepare"):
        assert expected in text
    assert "Cached:" not in text
    images = wait_for(lambda: (found := files_page.execute_script(IMAGES)) and all(i["complete"] for i in found)
                      and found, "the images to load")
    assert {i["alt"]: i["width"] for i in images} == {"plots/square.png": 24, "plots/figure.svg": 40}
    files_page.set_script_timeout(WAIT_SECONDS)
    weights = files_page.execute_async_script(FETCH_LINK, "model.bin")
    assert (weights["status"], bytes(weights["bytes"])) == (200, WEIGHTS)
    assert weights["type"] == "application/octet-stream"
    output = files_page.execute_async_script(FETCH_LINK, "output")
    assert output["status"] == 200 and b"prepared 24" in bytes(output["bytes"])
    png = files_page.execute_async_script(FETCH_LINK, "square.png")
    assert png["type"] == "image/png" and bytes(png["bytes"]).startswith(b"\x89PNG")
    screenshot(files_page, "board-artifacts.png")


def test_artifact_paths_render_as_text(files_page: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    text = wait_for_text(files_page, "Files kept by the selected trials: 1")
    assert f"data/{HTML_NAME}" in text
    assert files_page.execute_script(_DEEP_JS + "return deep(document, 'img[src=x], b', []).length") == 0
    assert len(files_page.execute_script(IMAGES)) == 2  # only the PNG and SVG thumbnails
    with pytest.raises(NoAlertPresentException):
        _ = files_page.switch_to.alert
    odd = files_page.execute_async_script(FETCH_LINK, HTML_NAME)
    assert (odd["status"], bytes(odd["bytes"])) == (200, b"<b>x</b>")


# -- stored names written as HTML, on their own experiment (in another browser tab) ---------------------
def hostile(where: str) -> str:
    """Markup that changes the page title to ``pwned-<where>`` if it is ever parsed as HTML."""
    return f"<img src=x onerror=\"document.title='pwned-{where}'\">"


HOSTILE_PARAMETER, HOSTILE_METRIC = hostile("parameter"), hostile("metric")
HOSTILE_ERROR, HOSTILE_STEP, HOSTILE_RESULT = hostile("error"), hostile("step"), hostile("result")
HEADERS = _DEEP_JS + "return deep(document, '.slick-column-name', []).map(e => e.textContent);"


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Experiment ``hostile``: markup in a metric key, an error, and (written into the store by
    hand, as ``ex.parameter`` refuses it) a parameter name, a result and a cached step name."""
    folder = tmp_path_factory.mktemp("hostile-store")
    ex = Experiment("hostile", backend=folder / "hostile")
    lr = ex.parameter("lr")

    @ex.result
    def train(lr: float) -> float:
        for epoch in range(5):
            ex.save_metric(HOSTILE_METRIC, epoch, lr * epoch)
        if lr > 0.5:
            raise ValueError(HOSTILE_ERROR)
        return lr

    for value in (0.1, 0.2, 0.9):
        try:
            ex.run(train(lr), lr=value)
        except ValueError:
            pass
    (recorded,) = ex.backend.load_trials([1])
    forged = dataclasses.replace(
        recorded, trial_id=ex.backend.allocate_trial_ids(1)[0], result=HOSTILE_RESULT,
        parameters={"lr": 0.3, HOSTILE_PARAMETER: 7}, cached_steps=((HOSTILE_STEP, 1),),
    )
    ex.backend.write_batch(RecordBatch(trials=[forged]))
    ex.backend.close()
    Experiment._instances.clear()
    return folder


@pytest.fixture(scope="module")
def hostile_page(hostile_store: Path, browser: Any) -> Iterator[Any]:
    """The dashboard of experiment ``hostile``, loaded in a new browser tab."""
    yield from board_in_new_tab(browser, "hostile", hostile_store, "4")


def test_stored_names_render_as_text_and_never_run(hostile_page: Any) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    title = hostile_page.title
    headers = wait_for(lambda: hostile_page.execute_script(HEADERS), "the table's columns")
    assert HOSTILE_PARAMETER in headers  # the column title shows the name as it is
    text = page_text(hostile_page)
    for shown in (HOSTILE_PARAMETER, HOSTILE_ERROR, HOSTILE_RESULT, HOSTILE_STEP):
        assert shown in text
    hostile_page.execute_script(ROW_CHECKBOX, "4").click()  # the forged trial, to compare
    wait_for_text(hostile_page, "Selected trials: 4")
    for tab in ("Metrics", "Parallel", "Scatter", "Compare", "Code", "Environment", "Artifacts", "Trials"):
        open_tab(hostile_page, tab)
        time.sleep(0.5)  # let a hostile onerror run, if it ever could
        assert hostile_page.execute_script(_DEEP_JS + "return deep(document, 'img[src=x]', []).length") == 0
        text += page_text(hostile_page)
    assert HOSTILE_METRIC in text  # offered in the metrics' and the scatter's choosers
    compare = hostile_page.execute_script(_DEEP_JS + "return deep(document, 'table.compare', [])"
                                          ".map(t => t.textContent).join(' ')")
    for shown in (HOSTILE_PARAMETER, HOSTILE_RESULT, HOSTILE_STEP, HOSTILE_METRIC):
        assert shown in compare
    assert "pwned" not in hostile_page.title and hostile_page.title == title
    with pytest.raises(NoAlertPresentException):
        _ = hostile_page.switch_to.alert
