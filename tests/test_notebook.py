"""notebook/quickstart.ipynb runs top to bottom in a real Jupyter kernel."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebook" / "quickstart.ipynb"


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, nbformat.NotebookNode]:
    """The notebook executed in a fresh folder; its tagged code cells by tag."""
    folder = tmp_path_factory.mktemp("notebook")
    copy = Path(shutil.copy(NOTEBOOK, folder))
    notebook = nbformat.read(copy, as_version=4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", str(NOTEBOOK.parent.parent))  # the kernel imports this checkout
        patch.setenv("DASKPERIMENT_CACHE_DIR", str(folder / ".cache"))  # the collectors' cache
        NotebookClient(
            notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
        ).execute()  # raises CellExecutionError on the first failing cell
    assert (folder / "daskperiment_cache" / "quickstart" / "quickstart.sqlite3").is_file()
    return {tag: cell for cell in notebook.cells for tag in cell.metadata.get("tags", [])}


def text(cell: nbformat.NotebookNode, kind: str = "text/plain") -> str:
    """Everything a cell output: streams and the ``kind`` representation of results."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif kind in output.get("data", {}):
            parts.append(output.data[kind])
    return "".join(parts)


def test_outputs_are_cleared_in_git() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_history_has_two_successes_and_a_failure(executed: dict) -> None:
    cell = executed["history"]
    assert "the trial failed: division by zero" in text(cell)
    table = text(cell).splitlines()
    assert [line.split()[0] for line in table[-3:]] == ["1", "2", "3"]
    assert "ZeroDivisionError(division by zero)" in table[-1]


def test_experiment_summary_is_html(executed: dict) -> None:
    assert "<b>Experiment</b> quickstart" in text(executed["summary"], "text/html")


def test_metrics_are_plotted(executed: dict) -> None:
    cell = executed["metrics"]
    assert any("image/png" in output.get("data", {}) for output in cell.outputs)


def test_code_diff_and_purity_warning(executed: dict) -> None:
    diff = text(executed["code-diff"])
    assert "-    return 10 / s" in diff and "+    return 100 / s" in diff
    assert "same seed, same output: True" in text(executed["seeding"])
    assert "WARNING daskperiment.purity: Experiment step result is changed with the same input" in text(
        executed["purity"]
    )


def test_a_new_process_reloads_the_history(executed: dict) -> None:
    output = text(executed["reload"])
    assert output.startswith("8 {'a': 1, 'b': 2}\n")  # 8 trials so far; trial 1's parameters
    assert "Trial ID" in output


def test_sweeps_record_every_trial_with_its_sweep(executed: dict) -> None:
    grid = text(executed["sweep-grid"]).splitlines()[1:]  # header, then one line per trial
    rows = [line.split() for line in grid if "grid-1" in line]
    assert len(rows) == 8
    for _, a, b, result, success, _ in rows:
        assert float(result) == pytest.approx(100 / (int(a) + int(b)), rel=1e-6)  # score redefined above and success == "True"
    assert text(executed["sweep-random"]).count("random-1") == 8


def test_trials_on_a_cluster(executed: dict) -> None:
    output = text(executed["cluster"])
    assert f"one trial on the cluster: {100 / 6}" in output
    assert f"{[100 / (a + 2) for a in range(1, 5)]}" in output


def test_optuna_search_names_a_recorded_best_trial(executed: dict) -> None:
    import ast

    line, direction = text(executed["optuna"]).splitlines()[-2:]
    trial, rest = line.removeprefix("best trial: ").split(" ", 1)
    parameters, value = rest.rsplit(" ", 1)
    recorded = ast.literal_eval(parameters)
    assert int(trial) > 0 and 1 <= recorded["a"] <= 20 and recorded["b"] == 2
    assert float(value) == pytest.approx(100 / (recorded["a"] + recorded["b"]))  # its own result
    assert direction == "direction: minimize"


def test_the_second_sweep_loads_every_step_from_the_cache(executed: dict) -> None:
    lines = text(executed["cache"]).splitlines()
    rows = [line.split(None, 4) for line in lines if "slow_load (trial" in line]
    assert len(rows) == 3
    for trial, size, result, _, source in rows:
        assert int(result) == sum(range(int(size))) and source.startswith(("(trial", "total (trial"))
    assert [line for line in lines if line.startswith("first sweep:")]


def test_environment_is_text_as_in_05(executed: dict) -> None:
    output = text(executed["environment"])
    assert "Device CPU Count:" in output and "Python venv:" in output and "Python Version:" in output
    assert "Number of Installed Python Packages:" in output and "Git Repository:" in output


def test_a_trial_keeps_its_plot_and_output(executed: dict) -> None:
    cell = executed["artifacts"]
    output = text(cell)
    assert "plots" in output and "rows.png" in output and "output" in output
    assert "plotted 20 rows" in output
    assert any("image/png" in item.get("data", {}) for item in cell.outputs)


def test_a_running_trial_shows_as_running_and_is_followed_to_its_end(executed: dict) -> None:
    output = text(executed["live"]).replace("\r\n", "\n")  # the shell command's lines end with \r\n
    history = output.split("loss\t")[0].splitlines()
    assert history[-1].split() == ["1", "40", "running"]  # read while it runs
    assert "loss\t39\t0.025\nstatus: finished, result 0.025\n" in output
    assert output.endswith("result: 0.025\n")


def test_notes_tags_export_import_and_deletion(executed: dict) -> None:
    notes = text(executed["notes"]).splitlines()
    assert notes[-1].split() == ["1", "40", "finished", "first", "run:", "40", "epochs", "baseline,", "notebook"]
    output = text(executed["transfer"]).splitlines()
    assert output[0] == "exported: 1 trials and 1 running"
    assert output[-4].split() == notes[-1].split()  # the copy keeps the note and tags
    assert output[-3].split() == ["2", "30", "running"]  # and the running trial, with its points so far
    assert output[-2] == "points of the running trial in the copy: True"
    assert output[-1] == f"result in the original: {1 / 30}"
    assert text(executed["delete"]) == "deleted: [1]\ncopy: [2] original: [1, 2]\n"
