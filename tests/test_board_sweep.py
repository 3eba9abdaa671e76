"""The dashboard of a sweep in a real headless Chromium: selection, filters, direction and sweep views."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_board_browser import (
    _DEEP_JS,
    ROW_CHECKBOX,
    browser,  # noqa: F401 - the module's headless Chromium
    open_tab,
    page_text,
    screenshot,
    wait_for,
    wait_for_text,
)

from daskperiment import Experiment
from daskperiment.board import BoardServer, start

pytestmark = pytest.mark.usefixtures("browser")

LRS = (0.001, 0.01, 0.1, 0.3, 1.0)
DEPTHS = (1, 2, 3)
MODELS = ("cnn", "mlp")
EPOCHS = 12


def accuracy(lr: float, depth: int, model: str) -> float:
    """What trial ``(lr, depth, model)`` of the sweep returns: an accuracy, highest is best."""
    return round(0.9 - 0.1 * abs(math.log10(lr) + 1.5) + 0.02 * depth + (0.03 if model == "mlp" else 0.0), 6)


def grid_trial(trial_id: int) -> tuple[float, int, str]:
    """Parameters of sweep trial ``trial_id`` (1-30): the grid's last name varies fastest."""
    index = trial_id - 1
    return LRS[index // 6], DEPTHS[index % 6 // 2], MODELS[index % 2]


@pytest.fixture(scope="module")
def sweep_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Experiment ``sweep``: a 30-trial grid sweep ``grid-1`` of an accuracy, with metrics, then
    trial 31 run alone with ``lr='oops'`` (a mixed-type column)."""
    folder = tmp_path_factory.mktemp("sweep-store")
    ex = Experiment("sweep", backend=folder / "sweep")
    lr, depth, model = ex.parameter("lr"), ex.parameter("depth", default=1), ex.parameter("model", default="cnn")

    @ex.result
    def train(lr: Any, depth: int, model: str) -> float:
        rate = lr if isinstance(lr, float) else 0.05
        final = accuracy(rate, depth, model)
        for epoch in range(EPOCHS):
            ex.save_metric("acc", epoch, final * (epoch + 1) / EPOCHS)
            ex.save_metric("loss", epoch, 1.0 - final * (epoch + 1) / EPOCHS)
        return final

    ex.sweep(train(lr, depth, model), grid={"lr": list(LRS), "depth": list(DEPTHS), "model": list(MODELS)},
             name="grid-1", scheduler="sync")
    ex.run(train(lr, depth, model), lr="oops", scheduler="sync")
    ex.backend.close()
    Experiment._instances.clear()
    return folder


@pytest.fixture(scope="module")
def sweep_board(sweep_store: Path) -> Iterator[BoardServer]:
    server = start("sweep", sweep_store, port=0)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sweep_page(sweep_board: BoardServer, browser: Any) -> Any:  # noqa: F811
    """The dashboard of experiment ``sweep``, loaded, every trial on one page."""
    browser.get(sweep_board.url)
    wait_for(lambda: browser.execute_script(ROW_CHECKBOX, "31"), "the dashboard to load")
    return browser


# -- reading the page ---------------------------------------------------------------------------
TABLE_STATE = """
const doc = Bokeh.documents[0];
const source = doc.get_model_by_name('history_table').source;
const column = source.data.get ? source.data.get('trial') : source.data['trial'];
const trials = Array.from(column);
return {shown: trials, ticked: Array.from(source.selected.indices).map(i => trials[i])};
"""
CHECKED_ROWS = _DEEP_JS + """
const ticked = [];
for (const row of deep(document, '.slick-row', [])) {
  const cells = row.querySelectorAll('.slick-cell');
  const box = cells.length > 1 && cells[0].querySelector('input[type=checkbox]');
  if (box && box.checked) ticked.push(Number(cells[1].textContent.trim()));
}
return ticked;
"""
SOURCE_COLUMN = """
const model = Bokeh.documents[0].get_model_by_name(arguments[0]);
if (!model) return null;
const column = model.data.get ? model.data.get(arguments[1]) : model.data[arguments[1]];
return column ? Array.from(column) : null;
"""
DRAWN_ROWS = _DEEP_JS + """
const rows = deep(document, '.slick-row', []).map(r => [parseFloat(r.style.top), r.querySelectorAll('.slick-cell')]);
return rows.filter(([, cells]) => cells.length > 1).sort((a, b) => a[0] - b[0])
  .map(([, cells]) => Number(cells[1].textContent.trim()));
"""
FILTER_INPUT = _DEEP_JS + """
return deep(document, 'input', []).find(i => (i.placeholder || '').startsWith('filter')) || null;
"""


def column_of(driver: Any, source: str, column: str) -> list | None:
    """Column ``column`` of the data source named ``source``, as the browser has it."""
    return driver.execute_script(SOURCE_COLUMN, source, column)


def selection_state(driver: Any) -> dict[str, Any]:
    """What each part of the page says is selected."""
    table = driver.execute_script(TABLE_STATE)
    text = page_text(driver)
    header = next((line for line in text.splitlines() if line.startswith(("Selected trials:", "No trial selected"))),
                  "")
    return {
        "header": header,
        "shown": table["shown"],
        "ticked": sorted(table["ticked"]),
        "checked": sorted(driver.execute_script(CHECKED_ROWS)),
        "drawn": driver.execute_script(DRAWN_ROWS),
        "rings": sorted(column_of(driver, "selected_trials", "trial") or []),
        "curves": column_of(driver, "metric_lines_source", "trial"),
    }


def agrees(state: dict[str, Any], selected: list[int]) -> bool:
    """Whether header, rows, charts and curves all show the trials ``selected``."""
    shown = set(state["shown"])
    visible_ticks = [t for t in selected if t in shown]
    header = "Selected trials: " + ", ".join(str(t) for t in selected)
    return (
        (state["header"] == header if selected else state["header"].startswith("No trial selected"))
        and state["ticked"] == visible_ticks
        and set(state["checked"]) <= set(visible_ticks)
        and state["drawn"] == state["shown"][:len(state["drawn"])]  # the rows drawn are the page's
        and state["rings"] == selected
        and (sorted(state["curves"] or []) == selected or not selected)  # none selected: the latest trials'
    )


def settled_selection(driver: Any, selected: list[int], what: str) -> dict[str, Any]:
    """The page's selection state once it shows ``selected`` everywhere and stays so for a while
    (a stray echo of the browser would change it meanwhile)."""
    def steady() -> dict[str, Any] | None:
        first = selection_state(driver)
        if not agrees(first, selected):
            return None
        time.sleep(1.0)
        second = selection_state(driver)
        return second if agrees(second, selected) else None

    try:
        return wait_for(steady, what)
    except AssertionError:
        raise AssertionError(f"{what}: the page shows {selection_state(driver)}") from None


def set_filter(driver: Any, text: str) -> None:
    """Type ``text`` into the filter box and press Enter."""
    from selenium.webdriver.common.keys import Keys

    box = wait_for(lambda: driver.execute_script(FILTER_INPUT), "the filter box")
    driver.execute_script("arguments[0].focus(); arguments[0].value = '';", box)  # focused first: Enter changes it
    box.send_keys(text or " ", Keys.ENTER)  # a user's edit (a blank one clears the filter)


def choose(driver: Any, title: str, option: str) -> None:
    """Choose ``option`` in the select box titled ``title`` (its label), or holding that option."""
    from selenium.webdriver.support.select import Select

    element = wait_for(lambda: driver.execute_script(_DEEP_JS + """
const selects = deep(document, 'select', []);
const titled = deep(document, 'label', []).find(l => l.textContent.trim() === arguments[0]);
if (titled) {
  const found = titled.parentNode.querySelector('select') || (titled.parentNode.shadowRoot || titled.parentNode)
    .querySelector('select');
  if (found) return found;
}
return selects.find(s => Array.from(s.options).some(o => o.text === arguments[1])) || null;
""", title, option), f"select {title!r}")
    Select(element).select_by_visible_text(option)


def tick(driver: Any, trial: int) -> None:
    wait_for(lambda: driver.execute_script(ROW_CHECKBOX, str(trial)), f"the row of trial {trial}").click()


# -- selection ------------------------------------------------------------------------------------
def test_selection_is_a_set_of_trial_ids_across_filters_sorting_and_pages(sweep_page: Any) -> None:
    page = sweep_page
    for trial in (16, 20, 24):
        tick(page, trial)
    settled_selection(page, [16, 20, 24], "trials 16, 20 and 24 ticked")
    set_filter(page, "model=mlp")  # 15 rows: trial 16 was on row 16, that no longer exists
    wait_for(lambda: 15 not in selection_state(page)["shown"], "the filter to apply")
    state = settled_selection(page, [16, 20, 24], "the selection after filtering")
    assert sorted(state["shown"]) == [t for t in range(1, 31) if grid_trial(t)[2] == "mlp"]
    set_filter(page, "depth>=2")  # hides 20 (depth 1)
    wait_for(lambda: 20 not in selection_state(page)["shown"], "the second filter to apply")
    state = settled_selection(page, [16, 20, 24], "the selection after filtering again")
    assert sorted(state["shown"]) == [t for t in range(1, 31) if grid_trial(t)[1] >= 2]  # 31: depth 1
    set_filter(page, "")
    wait_for(lambda: len(selection_state(page)["shown"]) == 31, "every trial to show again")
    settled_selection(page, [16, 20, 24], "the selection without filter")
    choose(page, "Sort by", "Result")
    wait_for(lambda: selection_state(page)["shown"][:1] != [31], "the table to sort by result")
    settled_selection(page, [16, 20, 24], "the selection after sorting")
    tick(page, 20)  # unticking one of them
    settled_selection(page, [16, 24], "trial 20 unticked")
    choose(page, "Rows", "25")
    wait_for(lambda: len(selection_state(page)["shown"]) == 25, "pages of 25 rows")
    settled_selection(page, [16, 24], "the selection on pages of 25")
    open_tab(page, "Metrics")
    wait_for_text(page, "of the selected trials: 16, 24")
    open_tab(page, "Trials")
    choose(page, "Rows", "100")
    choose(page, "Sort by", "Trial ID")
    wait_for(lambda: selection_state(page)["shown"][:1] == [31], "the table sorted by id again")
    page.execute_script(_DEEP_JS + "deep(document, 'button', []).find(b => b.textContent.trim() === "
                        "'Clear selection').click();")
    wait_for(lambda: selection_state(page)["header"].startswith("No trial selected"), "the selection cleared")
    screenshot(page, "board-sweep-selection.png")


# -- the filter ---------------------------------------------------------------------------------------
def shown_trials(driver: Any) -> list[int]:
    return selection_state(driver)["shown"]


def test_a_malformed_filter_is_an_inline_error_and_the_table_stays(sweep_page: Any) -> None:
    page = sweep_page
    set_filter(page, "lr<0.05")  # the numbers below 0.05; the text 'oops' is not compared
    small = sorted(t for t in range(1, 31) if grid_trial(t)[0] < 0.05)
    wait_for(lambda: sorted(shown_trials(page)) == small, "trials with lr<0.05")
    for text, message in (
        ("lr>0.5 and", "cannot read the value '0.5 and' of 'lr>0.5 and' (join conditions with commas, not 'and')"),
        ("model>3", "model>3: model holds texts, not numbers"),
        ("depth=two", "depth='two': depth holds numbers, not texts"),
        ("lr>0.5, size=2", "no column 'size' in the history"),
    ):
        set_filter(page, text)
        wait_for_text(page, message)
        time.sleep(1.0)  # a table that changed would have by now
        assert sorted(shown_trials(page)) == small, text
    screenshot(page, "board-filter-error.png")
    set_filter(page, "lr=oops")  # the text of the mixed column
    wait_for(lambda: shown_trials(page) == [31], "the trial with lr='oops'")
    assert "cannot read" not in page_text(page) and "holds" not in page_text(page)
    set_filter(page, "")
    wait_for(lambda: len(shown_trials(page)) == 31, "every trial")


# -- selection rings ------------------------------------------------------------------------------------
def points(driver: Any, source: str, x: str, y: str) -> dict[int, tuple[Any, Any]]:
    """Per trial, the point ``(x, y)`` source ``source`` draws in the browser."""
    trials, xs, ys = (column_of(driver, source, name) for name in ("trial", x, y))
    return {t: (a, b) for t, a, b in zip(trials or [], xs or [], ys or [])}


def test_selection_rings_sit_on_their_dots_on_every_axis(sweep_page: Any) -> None:
    page = sweep_page
    for trial in (16, 31):  # 31: lr='oops', the mixed column's text
        tick(page, trial)
    settled_selection(page, [16, 31], "trials 16 and 31 selected")
    for parameter in ("lr", "model", "depth"):
        choose(page, "Result against", parameter)

        def rings_on_dots() -> bool:  # and the dots of this parameter drawn (the page redraws them after the choice)
            dots, rings = (points(page, name, "x", "result") for name in ("parameter_dots", "parameter_rings"))
            places = {dots[t][0] for t in range(1, 31) if t in dots}
            return (
                sorted(rings) == [16, 31] and all(rings[t] == dots[t] for t in rings)
                and len(places) == {"lr": 5, "model": 2, "depth": 3}[parameter]
            )

        wait_for(rings_on_dots, f"the rings of trials 16 and 31 on their dots against {parameter}")
        dots = points(page, "parameter_dots", "x", "result")
        places = {dots[t][0] for t in range(1, 31)}
        assert len(places) == {"lr": 5, "model": 2, "depth": 3}[parameter]  # one place per value
        assert (dots[31][0] not in places) == (parameter == "lr")  # 'oops' has its own place
    rings = points(page, "selected_trials", "trial", "result")
    assert rings == {t: (t, points(page, "trial_dots", "trial", "result")[t][1]) for t in (16, 31)}
    screenshot(page, "board-rings.png")
    tick(page, 16)
    tick(page, 31)
    settled_selection(page, [], "the selection cleared")
