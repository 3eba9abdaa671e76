"""The dashboard of a sweep in a real headless Chromium: selection, filters, direction and sweep views."""

from __future__ import annotations

import math
import subprocess
import sys
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
    return round(0.9 - 0.1 * abs(math.log10(lr) + 1.5) + 0.02 * depth + (0.03 if model == "mlp" else 0.0)
                 + 0.001 * lr, 6)  # (no two trials tie)


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
        and _drawn_in_order(state)
        and state["rings"] == selected
    )


def _drawn_in_order(state: dict[str, Any]) -> bool:
    """Whether the rows the table draws (those scrolled to) are the page's, in its order."""
    drawn, shown = state["drawn"], state["shown"]
    if not drawn:
        return not shown
    start = shown.index(drawn[0]) if drawn[0] in shown else -1
    return start >= 0 and shown[start:start + len(drawn)] == drawn


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


COMPARED = _DEEP_JS + """
return deep(document, 'table.compare tr:first-child th', []).map(th => th.textContent.trim()).filter(t => t);
"""


def tabs_agree(driver: Any, selected: list[int]) -> None:
    """The Metrics and Compare tabs show the trials ``selected`` (then back to the table)."""
    open_tab(driver, "Metrics")
    wait_for(lambda: column_of(driver, "metric_lines_source", "trial") == selected[:10], "the selected curves")
    open_tab(driver, "Compare")
    wait_for(lambda: [t.split()[1] for t in driver.execute_script(COMPARED)] == [str(t) for t in selected],
             "the selected trials compared")
    open_tab(driver, "Trials")


def set_filter(driver: Any, text: str) -> None:
    """Type ``text`` into the filter box and press Enter."""
    from selenium.webdriver.common.keys import Keys

    box = wait_for(lambda: driver.execute_script(FILTER_INPUT), "the filter box")
    driver.execute_script("arguments[0].focus(); arguments[0].value = '';", box)  # focused first: Enter changes it
    box.send_keys(text or " ", Keys.ENTER)  # a user's edit (a blank one clears the filter)


def choose(driver: Any, title: str, option: str) -> None:
    """Choose ``option`` in the select box titled ``title`` (by its label), or else offering that option."""
    from selenium.webdriver.support.select import Select

    element = wait_for(lambda: driver.execute_script(_DEEP_JS + """
const offers = s => s && Array.from(s.options).some(o => o.text === arguments[1]);
const titled = deep(document, 'label', []).find(l => l.textContent.trim() === arguments[0]);
if (titled) {
  const found = titled.parentNode.querySelector('select');
  return offers(found) ? found : null;
}
return deep(document, 'select', []).find(offers) || null;
""", title, option), f"select {title!r}")
    Select(element).select_by_visible_text(option)


SCROLL_TABLE = _DEEP_JS + """
const viewport = deep(document, '.slick-viewport', [])[0];
viewport.scrollTop = arguments[0];
"""


def tick(driver: Any, trial: int) -> None:
    """Click the checkbox of trial ``trial``'s row (scrolled to, if need be)."""
    row = selection_state(driver)["shown"].index(trial)
    driver.execute_script(SCROLL_TABLE, max(0, 25 * (row - 3)))
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
    tabs_agree(page, [16, 20, 24])  # the hidden trial 20 too
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
    tabs_agree(page, [16, 24])
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

        values = {grid_trial(t)[("lr", "depth", "model").index(parameter)] for t in range(1, 31)}

        def rings_on_dots() -> bool:
            dots, rings = (points(page, name, "x", "result") for name in ("parameter_dots", "parameter_rings"))
            places = {dots[t][0] for t in range(1, 31)} if len(dots) == 31 else set()
            return (len(places) == len(values)  # one place per value: the parameter is shown
                    and sorted(rings) == [16, 31] and all(rings[t] == dots[t] for t in rings))

        wait_for(rings_on_dots, f"the rings of trials 16 and 31 on their dots against {parameter}")
        dots = points(page, "parameter_dots", "x", "result")
        places = {dots[t][0] for t in range(1, 31)}
        assert (dots[31][0] not in places) == (parameter == "lr")  # 'oops' has its own place
    rings = points(page, "selected_trials", "trial", "result")
    assert rings == {t: (t, points(page, "trial_dots", "trial", "result")[t][1]) for t in (16, 31)}
    screenshot(page, "board-rings.png")
    tick(page, 16)
    tick(page, 31)
    settled_selection(page, [], "the selection cleared")


# -- the objective direction -------------------------------------------------------------------------
RESULTS = {t: accuracy(*grid_trial(t)) for t in range(1, 31)} | {31: accuracy(0.05, 1, "cnn")}
CLICK_LABEL = _DEEP_JS + """
const button = deep(document, 'button', []).find(b => b.textContent.trim() === arguments[0]);
button.click();
"""


def starred(driver: Any) -> list[int] | None:
    return column_of(driver, "best_trial", "trial")


def test_the_direction_is_stored_with_the_experiment_and_followed(sweep_page: Any, sweep_board: BoardServer,
                                                                  sweep_store: Path, child_env: dict) -> None:
    page = sweep_page
    worst, best = min(RESULTS, key=RESULTS.get), max(RESULTS, key=RESULTS.get)
    wait_for(lambda: starred(page) == [worst], "the lowest accuracy starred while no direction is stored")
    assert "Best result (lowest, assumed)" in page_text(page)
    page.execute_script(CLICK_LABEL, "highest is best")
    wait_for(lambda: starred(page) == [best], "the highest accuracy starred")
    page.get(sweep_board.url)  # a reload, as a teammate opening the dashboard
    wait_for(lambda: page.execute_script(ROW_CHECKBOX, "31"), "the dashboard to load again")
    wait_for(lambda: starred(page) == [best], "the highest accuracy still starred after a reload")
    text = wait_for_text(page, "Best result (highest)")
    assert f"trial {best} · lr={grid_trial(best)[0]:g}, depth={grid_trial(best)[1]}" in text
    assert f"{RESULTS[best]:.6g}" in text
    screenshot(page, "board-direction.png")
    done = subprocess.run(
        [sys.executable, "-m", "daskperiment.cli", "direction", "sweep", "minimize", "--backend", str(sweep_store)],
        env=child_env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    wait_for(lambda: starred(page) == [worst], "the page to follow the direction set from the command line")
    wait_for_text(page, "Best result (lowest)")
    page.execute_script(CLICK_LABEL, "highest is best")  # the sweep's direction, for the views below
    wait_for(lambda: starred(page) == [best], "the highest accuracy starred again")


# -- parallel coordinates -------------------------------------------------------------------------------
TO_SCREEN = """
const model = Bokeh.documents[0].get_model_by_name(arguments[0]).children[0];
const view = model && Bokeh.index.find_one(model);
if (!view) return null;
view.el.scrollIntoView({block: 'center'});
const box = view.canvas_view.el.getBoundingClientRect();
return arguments[1].map(([x, y]) => [box.left + view.frame.x_scale.compute(x),
                                     box.top + view.frame.y_scale.compute(y)]);
"""


def drag(driver: Any, plot: str, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Drag the mouse on plot ``plot`` from data point ``start`` to ``end``."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    (x0, y0), (x1, y1) = wait_for(lambda: driver.execute_script(TO_SCREEN, plot, [start, end]), f"plot {plot}")
    actions = ActionBuilder(driver)
    actions.pointer_action.move_to_location(int(x0), int(y0)).pointer_down()
    for step in range(1, 6):
        actions.pointer_action.move_to_location(int(x0 + (x1 - x0) * step / 5), int(y0 + (y1 - y0) * step / 5))
    actions.pointer_action.pointer_up()
    actions.perform()


def page_info(driver: Any) -> str:
    return next(line for line in page_text(driver).splitlines() if line.startswith("page "))


def test_brushing_an_axis_filters_the_trials_and_selects_them(sweep_page: Any) -> None:
    page = sweep_page
    open_tab(page, "Parallel")
    wait_for(lambda: len(column_of(page, "parallel_lines", "trial") or []) == 31, "a line per trial")
    drag(page, "parallel_holder", (1.0, 0.7), (1.0, 1.04))  # along the depth axis (lr, depth, model, Result): 3
    deepest = [t for t in range(1, 31) if grid_trial(t)[1] == 3]
    wait_for(lambda: sorted(column_of(page, "parallel_lines", "trial")) == deepest, "the brushed lines")
    assert sorted(column_of(page, "parallel_dimmed", "trial")) == sorted(set(range(1, 32)) - set(deepest))
    assert column_of(page, "parallel_brushes", "bottom") is not None
    wait_for_text(page, "10 of 31 trials inside the brushes · depth from")
    assert page_info(page) == "page 1 of 1 · 10 of 31 trials"  # the table follows
    screenshot(page, "board-parallel.png")
    page.execute_script(CLICK_LABEL, "Select these trials")
    state = settled_selection(page, deepest, "the brushed trials selected")
    assert sorted(state["shown"]) == deepest
    assert sorted(column_of(page, "parallel_selected", "trial")) == deepest
    drag(page, "parallel_holder", (0.0, 0.3), (0.0, 0.55))  # and along lr: 0.1 only (0.001 0.01 0.1 0.3 1 oops)
    both = [t for t in deepest if grid_trial(t)[0] == 0.1]
    wait_for(lambda: sorted(column_of(page, "parallel_lines", "trial")) == both, "lines inside both brushes")
    assert page_info(page) == f"page 1 of 1 · {len(both)} of 31 trials"
    page.execute_script(CLICK_LABEL, "Clear brushes")
    wait_for(lambda: page_info(page) == "page 1 of 1 · 31 trials", "every trial again")
    page.execute_script(CLICK_LABEL, "Clear selection")
    settled_selection(page, [], "the selection cleared")
    open_tab(page, "Trials")


# -- scatter ------------------------------------------------------------------------------------------
SCATTER_SCALES = """
const holder = Bokeh.documents[0].get_model_by_name('scatter_holder');
const plot = holder.children[0];
const colorBars = plot.right.filter(r => r.type === 'ColorBar' || (r.constructor && r.constructor.name === 'ColorBar'));
return {x: plot.x_scale.type || plot.x_scale.constructor.name, y: plot.y_scale.type || plot.y_scale.constructor.name,
        color_bar: colorBars.length, id: plot.id};
"""


def scatter_points(driver: Any) -> dict[int, tuple[float, float]]:
    return points(driver, "scatter_dots", "x", "y")


def test_scatter_of_any_two_columns_with_log_axes_and_colours(sweep_page: Any) -> None:
    page = sweep_page
    choose(page, "Sweep", "grid-1 (30 trials)")  # without trial 31 and its lr='oops': lr is all numbers
    wait_for(lambda: page_info(page) == "page 1 of 1 · 30 of 31 trials", "the sweep's trials")
    open_tab(page, "Scatter")
    choose(page, "y", "loss · last")
    expected = {t: (grid_trial(t)[0], pytest.approx(1.0 - RESULTS[t])) for t in range(1, 31)}
    wait_for(lambda: scatter_points(page) == expected, "lr against the last loss of every trial of the sweep")
    def log_box(axis: str) -> Any:
        return wait_for(lambda: page.execute_script(_DEEP_JS + """
return deep(document, 'label', []).find(l => l.textContent.trim() === arguments[0]).querySelector('input');""",
                                                    f"log {axis}"), f"the log {axis} box")

    log_box("x").click()
    wait_for(lambda: "Log" in page.execute_script(SCATTER_SCALES)["x"], "a log x axis")
    assert scatter_points(page) == expected  # the same points, on a log scale
    assert "Log" not in page.execute_script(SCATTER_SCALES)["y"]
    log_box("y").click()  # any numeric axis: the last losses too
    wait_for(lambda: "Log" in page.execute_script(SCATTER_SCALES)["y"], "a log y axis")
    assert scatter_points(page) == expected and "Log" in page.execute_script(SCATTER_SCALES)["x"]
    choose(page, "Colour by", "model")
    wait_for_text(page, "model:")  # a legend of the two models
    assert page.execute_script(SCATTER_SCALES)["color_bar"] == 0
    choose(page, "Colour by", "depth")
    wait_for(lambda: page.execute_script(SCATTER_SCALES)["color_bar"] == 1, "a colour bar of the depths")
    assert "Log" in page.execute_script(SCATTER_SCALES)["x"]  # still log
    screenshot(page, "board-scatter.png")
    dots = scatter_points(page)
    target = 12
    (x, y), = page.execute_script(TO_SCREEN, "scatter_holder", [list(dots[target])])
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    tap = ActionBuilder(page)
    tap.pointer_action.move_to_location(int(x), int(y)).click()
    tap.perform()
    settled_selection(page, [target], "the clicked dot's trial selected")
    assert points(page, "scatter_rings", "x", "y") == {target: dots[target]}
    choose(page, "x", "lr")
    choose(page, "Sweep", "All trials (31)")
    wait_for_text(page, "lr stays linear: its values are not all numbers")  # 'oops' is back
    assert "Log" not in page.execute_script(SCATTER_SCALES)["x"]
    open_tab(page, "Trials")
    tick(page, target)
    settled_selection(page, [], "the selection cleared")


# -- compare, metrics, sweeps -----------------------------------------------------------------------------
COMPARE_ROWS = _DEEP_JS + """
const table = deep(document, 'table.compare', [])[0];
if (!table) return null;
return Array.from(table.rows).map(r => Array.from(r.cells).map(c => [c.textContent, c.className]));
"""


def test_compare_table_of_any_number_of_selected_trials(sweep_page: Any) -> None:
    page = sweep_page
    compared = [5, 12, 18, 25, 31]
    for trial in compared:
        tick(page, trial)
    settled_selection(page, compared, "five trials selected")
    open_tab(page, "Compare")
    rows = wait_for(lambda: (found := page.execute_script(COMPARE_ROWS)) and len(found[0]) == 6 and found,
                    "the compare table")
    header, *body = rows
    best = max(compared, key=RESULTS.get)
    assert [text for text, _ in header[1:]] == [f"trial {t}" + (" ★" if t == best else "") for t in compared]
    table = {cells[0][0]: cells[1:] for cells in body}
    parameters = {5: (0.001, 3, "cnn"), 31: ("oops", 1, "cnn")}
    for name, index in (("lr", 0), ("depth", 1), ("model", 2)):
        values = [str(parameters[t][index]) if t in parameters else f"{grid_trial(t)[index]:g}"
                  if index == 0 else str(grid_trial(t)[index]) for t in compared]
        assert [text for text, _ in table[name]] == values, name
        first = values[0]
        assert [css for _, css in table[name]] == ["differs" if v != first else "" for v in values], name
    assert [text for text, _ in table["Result"]] == [f"{RESULTS[t]:.6g}" for t in compared]
    assert [text for text, _ in table["acc · last"]] == [f"{RESULTS[t]:.6g}" for t in compared]
    assert [float(text) for text, _ in table["loss · last"]] == [pytest.approx(1 - RESULTS[t]) for t in compared]
    assert [text for text, _ in table["Sweep"]] == ["grid-1"] * 4 + [""]
    assert {"Seed", "Process Time (s)", "Finished", "Success"} <= set(table)
    screenshot(page, "board-compare.png")
    page.execute_script(_DEEP_JS + "deep(document, 'label', []).find(l => l.textContent.trim() === "
                        "'only the rows that differ').querySelector('input').click();")
    wait_for(lambda: "Success" not in {r[0][0] for r in page.execute_script(COMPARE_ROWS)[1:]},
             "the rows that are the same left out")
    assert {"lr", "Result", "Sweep"} <= {r[0][0] for r in page.execute_script(COMPARE_ROWS)[1:]}
    open_tab(page, "Trials")


def test_metrics_as_small_multiples_smoothed_and_by_time(sweep_page: Any, sweep_store: Path) -> None:
    page = sweep_page
    compared = [5, 12, 18, 25, 31]  # still selected
    open_tab(page, "Metrics")
    chosen = "return Array.from(Bokeh.documents[0].get_model_by_name('metric_keys').value)"
    wait_for(lambda: page.execute_script(chosen) == ["acc", "loss"], "several metrics at once (by default)")
    final = {t: RESULTS[t] for t in compared}

    def curves(index: int) -> dict[int, list[float]]:
        name = "metric_lines_source" if index == 0 else f"metric_lines_source_{index}"
        return dict(zip(column_of(page, name, "trial") or [], column_of(page, name, "ys") or []))

    wait_for(lambda: sorted(curves(0)) == compared and sorted(curves(1)) == compared, "both metrics' curves")
    for trial in compared:
        assert curves(0)[trial] == pytest.approx([final[trial] * (e + 1) / EPOCHS for e in range(EPOCHS)])
        assert curves(1)[trial] == pytest.approx([1 - final[trial] * (e + 1) / EPOCHS for e in range(EPOCHS)])
    page.execute_script("""
const slider = Bokeh.documents[0].get_model_by_name('smoothing');
slider.value = 0.5; slider.value_throttled = 0.5;""")

    def smoothed(values: list[float]) -> list[float]:
        average, out = 0.0, []
        for count, value in enumerate(values, 1):
            average = 0.5 * average + 0.5 * value
            out.append(average / (1 - 0.5**count))
        return out

    raw = {t: [final[t] * (e + 1) / EPOCHS for e in range(EPOCHS)] for t in compared}
    wait_for(lambda: all(curves(0).get(t) == pytest.approx(smoothed(raw[t])) for t in compared), "smoothed curves")
    screenshot(page, "board-metrics-multiples.png")
    page.execute_script(CLICK_LABEL, "by time (s)")
    store = Experiment("sweep", backend=sweep_store / "sweep").backend
    starts = {trial.trial_id: trial.finished - trial.process_time for trial in store.load_trials(compared)}
    saved = store.load_metrics("acc", compared)
    since_start = {}  # seconds from each trial's start (else its first point) to each point's time
    for trial in compared:
        times = saved.times[saved.trial_ids == trial].tolist()
        since_start[trial] = [when - min(starts[trial], *times) for when in times]

    def xs_by_time() -> dict[int, list[float]]:
        return dict(zip(column_of(page, "metric_lines_source", "trial") or [],
                        column_of(page, "metric_lines_source", "xs") or []))

    wait_for(lambda: xs_by_time() == pytest.approx(since_start, abs=1e-6), "curves at the points' recorded times")
    page.execute_script(CLICK_LABEL, "by epoch")
    page.execute_script("""
const slider = Bokeh.documents[0].get_model_by_name('smoothing');
slider.value = 0; slider.value_throttled = 0;""")
    open_tab(page, "Trials")
    page.execute_script(CLICK_LABEL, "Clear selection")
    settled_selection(page, [], "the selection cleared")


def test_a_sweep_scopes_the_page(sweep_page: Any) -> None:
    page = sweep_page
    choose(page, "Sweep", "grid-1 (30 trials)")
    wait_for(lambda: sorted(selection_state(page)["shown"]) == list(range(1, 31)), "the sweep's trials")
    wait_for(lambda: sorted(column_of(page, "trial_dots", "trial")) == list(range(1, 31)), "the sweep's dots")
    text = wait_for_text(page, "30 succeeded")
    best = max(range(1, 31), key=RESULTS.get)
    assert f"trial {best} · " in text and column_of(page, "best_trial", "trial") == [best]
    choose(page, "Sweep", "All trials (31)")
    wait_for(lambda: len(selection_state(page)["shown"]) == 31, "every trial again")


# -- export ---------------------------------------------------------------------------------------------
FETCH_CSV = _DEEP_JS + """
const done = arguments[arguments.length - 1];
const link = deep(document, 'a.export', [])[0];
fetch(link.href).then(r => r.text().then(t => done({status: r.status, type: r.headers.get('content-type'),
  disposition: r.headers.get('content-disposition'), text: t, href: link.getAttribute('href')})))
  .catch(e => done({error: String(e)}));
"""
SAVE = _DEEP_JS + """
const buttons = deep(document, '.bk-tool-icon-save', []).map(icon => icon.getRootNode().host)
  .filter(button => button.offsetParent !== null);
buttons[0].focus();
buttons[0].dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true}));  // the keyboard's press
return buttons.length;
"""


def test_the_table_exports_as_csv_the_trials_its_filters_match(sweep_page: Any) -> None:
    import csv
    import io

    page = sweep_page
    set_filter(page, "model=mlp, depth>=2")
    wait_for(lambda: page_info(page) == "page 1 of 1 · 10 of 31 trials", "the filtered trials")
    page.set_script_timeout(30)
    answer = page.execute_async_script(FETCH_CSV)
    assert answer["status"] == 200 and answer["type"] == "text/csv; charset=utf-8"
    assert answer["disposition"].startswith('attachment; filename="sweep-trials.csv"')
    rows = list(csv.DictReader(io.StringIO(answer["text"])))
    wanted = [t for t in range(30, 0, -1) if grid_trial(t)[2] == "mlp" and grid_trial(t)[1] >= 2]
    assert [int(r["Trial ID"]) for r in rows] == wanted  # the table's order, every page
    for row in rows:
        lr, depth, model = grid_trial(int(row["Trial ID"]))
        assert (float(row["lr"]), int(row["depth"]), row["model"]) == (lr, depth, model)
        assert float(row["Result"]) == RESULTS[int(row["Trial ID"])]
        assert row["Sweep"] == "grid-1" and row["Success"] == "True"
        assert float(row["Process Time (s)"]) >= 0 and row["Finished"][:2] == "20"  # seconds, ISO date
    set_filter(page, "")
    wait_for(lambda: page_info(page) == "page 1 of 1 · 31 trials", "every trial")
    assert len(page.execute_async_script(FETCH_CSV)["text"].splitlines()) == 32  # the same link follows
    tampered = answer["href"].replace(answer["href"].split("/")[1], "0" * 32)
    missing = page.execute_async_script(
        "const done = arguments[arguments.length - 1]; fetch(arguments[0]).then(r => done(r.status));", tampered)
    assert missing == 404


def test_charts_save_as_png_or_svg(sweep_page: Any, tmp_path: Path) -> None:
    page = sweep_page
    page.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    open_tab(page, "Trials")
    assert page.execute_script(SAVE) >= 2  # the per-trial charts' save tools (the first is pressed)
    png = wait_for(lambda: next(iter(tmp_path.glob("*.png")), None), "a PNG download")
    assert png.read_bytes().startswith(b"\x89PNG")
    page.refresh()  # (Chromium asks before a page's second download: a new page saves the SVG)
    wait_for(lambda: page.execute_script(ROW_CHECKBOX, "31"), "the dashboard to load again")
    page.execute_script(CLICK_LABEL, "SVG")
    wait_for(lambda: page.execute_script(
        "return Bokeh.documents[0].get_model_by_name('parallel_holder').children[0].output_backend") == "svg",
        "SVG charts")
    page.execute_script(SAVE)
    svg = wait_for(lambda: next(iter(tmp_path.glob("*.svg")), None), "an SVG download")
    assert b"<svg" in svg.read_bytes()[:500]
    page.execute_script(CLICK_LABEL, "PNG")
