"""Tables of the ``daskperiment`` command fit the terminal; ``--wide``, CSV and JSON show every value."""

from __future__ import annotations

import json

import pytest

from daskperiment import Experiment
from daskperiment.cli import main
from daskperiment.cli.fit import ELLIPSIS, MAX_CELL, fit_table, shorten
from daskperiment.history import seconds_text

LONG_NAME = "a_model_with_a_rather_long_name_" * 3
MESSAGE = ("the loss diverged at epoch 17 because the learning rate was far too high for this model " * 2).strip()


@pytest.fixture
def wide_experiment() -> Experiment:
    """``wide``: trial 1 has a long parameter value and result, trial 2 a long error description."""
    ex = Experiment("wide")
    model = ex.parameter("model")

    @ex.result
    def train(model):
        if model == "bad":
            raise ValueError(MESSAGE)
        return model.upper()

    ex.set_parameters(model=LONG_NAME)
    train(model).compute(seed=1)
    ex.set_parameters(model="bad")
    with pytest.raises(ValueError):
        train(model).compute(seed=2)
    return ex


def output(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(list(args)) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("columns", [100, 120, 160])  # 97: the dates, numbers, titles and Status are never cut
def test_history_table_fits_the_terminal(
    wide_experiment: Experiment, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, columns: int
) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    lines = output(capsys, "history", "wide").splitlines()
    assert max(len(line) for line in lines) <= columns
    text = "\n".join(lines)
    assert ELLIPSIS in text
    assert LONG_NAME not in text and MESSAGE not in text
    assert "ValueErr" in text and "a_model_" in text
    if columns >= 160:  # room for more than the first words
        assert "ValueError(the loss" in text and "a_model_with_a_rather" in text


def test_a_narrow_terminal_cuts_text_cells_to_their_minimum(
    wide_experiment: Experiment, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "30")  # too narrow for the dates and numbers, which are never cut
    text = output(capsys, "history", "wide")
    assert "ValueError" + ELLIPSIS in text  # as wide as its title, "Description"
    assert "a_model" + ELLIPSIS in text  # MIN_CELL wide
    assert "Process Time (s)" in text


def test_wide_history_shows_everything(
    wide_experiment: Experiment, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    text = output(capsys, "history", "wide", "--wide")
    assert LONG_NAME in text and LONG_NAME.upper() in text and f"ValueError({MESSAGE})" in text
    assert ELLIPSIS not in text


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_csv_and_json_never_cut(
    wide_experiment: Experiment, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    text = output(capsys, "history", "wide", "--format", fmt)
    assert LONG_NAME.upper() in text and MESSAGE in text and ELLIPSIS not in text


def test_process_time_agrees_in_api_cli_and_dashboard(
    wide_experiment: Experiment, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from daskperiment.board.query import cell_text
    from daskperiment.board.table import table_columns

    monkeypatch.setenv("COLUMNS", "200")
    times = wide_experiment.get_history()["Process Time"]  # the API: timedeltas
    expected = [seconds_text(t.total_seconds()) for t in times]
    lines = output(capsys, "history", "wide").splitlines()
    assert "Process Time (s)" in lines[0]
    start = lines[0].index("Process Time (s)")
    shown = [line[start:start + len("Process Time (s)")].strip() for line in lines[2:]]
    assert shown == expected
    assert [cell_text(t) for t in times] == expected
    assert "Process Time (s)" in [column.title for column in table_columns(["Process Time"])]
    show = output(capsys, "show", "wide", "1")
    assert f"Process Time (s): {expected[0]}\n" in show


def test_list_cache_and_artifacts_tables_fit(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = Experiment("e" * 70)
    x = ex.parameter("x")

    @ex(cache=True)
    def slow(x):
        return x * 2

    @ex.result
    def keep(value):
        (ex.artifact_dir("f" * 80) / ("g" * 60 + ".txt")).write_text("data")
        return value

    ex.set_parameters(x=1)
    keep(slow(x)).compute()
    monkeypatch.setenv("COLUMNS", "80")
    for args in (["list"], ["cache", ex.id], ["artifacts", ex.id, "1"]):
        text = output(capsys, *args)
        assert max(len(line) for line in text.splitlines()) <= 80, (args, text)
        assert ELLIPSIS in text, args
        full = output(capsys, *args, "--wide")
        assert ELLIPSIS not in full and max(len(line) for line in full.splitlines()) > 80, args


def test_shorten_and_fit_table() -> None:
    import pandas as pd

    assert shorten("x" * 10, 10) == "x" * 10
    assert shorten("x" * 11, 10) == "x" * 9 + ELLIPSIS
    assert shorten("two\nlines", 20) == "two lines"
    assert shorten(None, 5) is None
    frame = pd.DataFrame({"text": ["y" * 100], "number": [123456789.5]})
    assert len(fit_table(frame, 1000).splitlines()[1]) < MAX_CELL + 20
    narrow = fit_table(frame, 30)
    assert max(len(line) for line in narrow.splitlines()) <= 30 and "123456789.5" in narrow


def test_the_table_shows_status_only_when_it_says_more_than_success() -> None:
    import pandas as pd

    from daskperiment.cli.history import history_table

    frame = pd.DataFrame({
        "Success": [True, False],
        "Finished": pd.to_datetime(["2026-11-24 10:00:00", "2026-11-24 10:00:01"]),
        "Process Time": pd.to_timedelta([1.5, 2.0], unit="s"),
        "Status": ["finished", "failed"],
    })
    assert "Status" not in history_table(frame, "table")
    assert history_table(frame, "csv")["Status"].tolist() == ["finished", "failed"]
    frame.loc[1, "Status"] = "killed"
    assert history_table(frame, "table")["Status"].tolist() == ["finished", "killed"]
