"""Notes and tags of trials: set during a trial and afterwards, on every store and scheduler."""

from __future__ import annotations

import json
from typing import Any

import pytest

from daskperiment import Experiment
from daskperiment.errors import AnnotationError, TrialIDNotFoundError


@pytest.fixture(params=["local", "redis", "mongo"])
def backend(request: pytest.FixtureRequest, tmp_path) -> Any:
    if request.param == "local":
        return tmp_path / "store"
    return request.getfixturevalue(f"{request.param}_uri")


def annotating(ex: Experiment) -> Any:
    """A trial whose steps note and tag it from its parameters; b == 3 fails after tagging."""
    a, b = ex.parameter("a"), ex.parameter("b")

    @ex
    def prepare(a, b):
        ex.add_tags(f"a{a}")  # in a step that is not the result step, too
        return a * 10 + b

    @ex.result
    def score(value, a, b):
        ex.set_note(f"a={a}\nb={b}")
        ex.add_tags("even" if b % 2 == 0 else "odd", "scored")
        if b == 3:
            raise ValueError("b is 3")
        return value

    return score(prepare(a, b), a, b)


GRID = {"a": [1, 2, 3, 4, 5, 6], "b": [1, 2, 3, 4]}  # 24 trials, 6 of them failing


def expected_annotation(a: int, b: int) -> tuple[str, set[str]]:
    return f"a={a}\nb={b}", {f"a{a}", "even" if b % 2 == 0 else "odd", "scored"}


def check_every_row(ex: Experiment, changed: dict[int, tuple[str, set[str]]] | None = None) -> None:
    history = ex.get_history()
    assert len(history) == 24
    for trial_id, row in history.iterrows():
        note, tags = (changed or {}).get(trial_id) or expected_annotation(row["a"], row["b"])
        assert row["Note"] == note, trial_id
        assert row["Tags"] == ", ".join(sorted(tags)), trial_id
        assert ex.get_note(trial_id) == note and ex.get_tags(trial_id) == frozenset(tags)
        assert row["Success"] == (row["b"] != 3)
        if row["Success"]:
            assert row["Result"] == row["a"] * 10 + row["b"]


def test_steps_annotate_their_trial_on_every_scheduler(scheduler, make_experiment) -> None:
    ex = make_experiment()
    result = annotating(ex)
    ex.sweep(result, grid=GRID, scheduler=scheduler, share=False)
    check_every_row(ex)


def test_notes_and_tags_are_edited_afterwards_on_every_store(backend, make_experiment) -> None:
    ex = make_experiment(backend=backend)
    result = annotating(ex)
    ex.sweep(result, grid=GRID, scheduler="processes", share=False)
    check_every_row(ex)
    history = ex.get_history()
    changed = {}
    for trial_id, row in history.iterrows():
        note, tags = expected_annotation(row["a"], row["b"])
        if trial_id % 3 == 0:
            ex.set_note(trial_id, "")
            note = ""
        if trial_id % 4 == 0:
            ex.add_tags(trial_id, "reviewed", "keep")
            ex.remove_tags(trial_id, "scored", "not-a-tag")
            tags = (tags | {"reviewed", "keep"}) - {"scored"}
        if trial_id % 5 == 0:
            ex.set_note(trial_id, f"revised {trial_id} é ✓")
            note = f"revised {trial_id} é ✓"
        changed[trial_id] = (note, tags)
    check_every_row(ex, changed)
    # another process sees the same
    reopened_history = Experiment(ex.id + "x", backend=backend)  # another experiment shares nothing
    assert "Note" not in reopened_history.get_history().columns


def test_history_has_no_note_or_tags_column_before_any_annotation(ex) -> None:
    a = ex.parameter("a")

    @ex.result
    def double(a):
        return 2 * a

    for value in range(3):
        ex.run(double(a), a=value)
    assert "Note" not in ex.get_history().columns and "Tags" not in ex.get_history().columns
    ex.add_tags(2, "x")
    history = ex.get_history()
    assert list(history["Note"]) == ["", "", ""] and list(history["Tags"]) == ["", "x", ""]
    assert history["Tags"].str.split(", ").map(lambda tags: "x" in tags).tolist() == [False, True, False]


@pytest.fixture
def one_trial(ex: Experiment) -> Experiment:
    a = ex.parameter("a")

    @ex.result
    def double(a):
        return 2 * a

    ex.run(double(a), a=1)
    ex.set_note(1, "kept")
    ex.add_tags(1, "kept")
    return ex


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda ex: ex.set_note(1, 5), TypeError, "a note must be a str, got int"),
        (lambda ex: ex.set_note(1, b"bytes"), TypeError, "a note must be a str, got bytes"),
        (lambda ex: ex.set_note(1, "x" * 65_537), AnnotationError, "at most 65536 characters, this one has 65537"),
        (lambda ex: ex.set_note(1, "bad \x1b[31m red"), AnnotationError, r"control character '\\x1b'"),
        (lambda ex: ex.set_note(1, "nul \0"), AnnotationError, r"control character '\\x00'"),
        (lambda ex: ex.set_note(1, "half \ud800"), AnnotationError, "lone surrogate"),
        (lambda ex: ex.add_tags(1), TypeError, r"needs at least one tag"),
        (lambda ex: ex.add_tags(1, ""), AnnotationError, "a tag must hold some text"),
        (lambda ex: ex.add_tags(1, "   "), AnnotationError, "a tag must hold some text"),
        (lambda ex: ex.add_tags(1, 7), TypeError, "a tag must be a str, got int"),
        (lambda ex: ex.add_tags(1, "ok", None), TypeError, "a tag must be a str, got NoneType"),
        (lambda ex: ex.add_tags(1, "a,b"), AnnotationError, "may not hold a comma"),
        (lambda ex: ex.add_tags(1, " padded"), AnnotationError, "may not start or end with a space"),
        (lambda ex: ex.add_tags(1, "new\nline"), AnnotationError, r"control character '\\n'"),
        (lambda ex: ex.add_tags(1, "t" * 65), AnnotationError, "at most 64 characters"),
        (lambda ex: ex.add_tags(1, "\udcff"), AnnotationError, "lone surrogate"),
        (lambda ex: ex.add_tags(1, *(f"t{n}" for n in range(64))), AnnotationError, "would have 65"),
        (lambda ex: ex.remove_tags(1, ""), AnnotationError, "a tag must hold some text"),
        (lambda ex: ex.set_note(2, "x"), TrialIDNotFoundError, "trial 2 of experiment .* does not exist"),
        (lambda ex: ex.add_tags(0, "x"), TrialIDNotFoundError, "trial 0 of experiment .* does not exist"),
        (lambda ex: ex.set_note(True, "x"), TrialIDNotFoundError, "invalid trial id True"),
        (lambda ex: ex.get_note(1.0), TrialIDNotFoundError, "invalid trial id 1.0"),
        (lambda ex: ex.get_tags(9), TrialIDNotFoundError, "trial 9 of experiment .* does not exist"),
        (lambda ex: ex.set_note("no trial runs"), TrialIDNotFoundError, "set_note is only available inside a step"),
        (lambda ex: ex.add_tags("no trial runs"), TrialIDNotFoundError, "add_tags is only available inside a step"),
        (lambda ex: ex.get_note(), TrialIDNotFoundError, "get_note is only available inside a step"),
    ],
)
def test_bad_notes_and_tags_are_refused_and_change_nothing(one_trial, call, error, message) -> None:
    with pytest.raises(error, match=message):
        call(one_trial)
    assert one_trial.get_note(1) == "kept" and one_trial.get_tags(1) == {"kept"}
    assert one_trial.backend.load_annotations().keys() == {1}


def test_limits_are_inclusive(one_trial) -> None:
    one_trial.set_note(1, "n" * 65_536)
    one_trial.add_tags(1, "t" * 64, *(f"t{n}" for n in range(62)))
    assert len(one_trial.get_note(1)) == 65_536 and len(one_trial.get_tags(1)) == 64


def test_a_dry_run_annotates_nothing_and_the_history_refuses_those_names(ex) -> None:
    a = ex.parameter("a")

    @ex
    def prepare(a):
        ex.set_note("dry")
        ex.add_tags("dry")
        return ex.get_note() + str(sorted(ex.get_tags()))

    ex.set_parameters(a=1)
    assert prepare(a).compute() == "[]"
    assert ex.backend.load_annotations() == {}
    for name in ("Note", "Tags"):
        with pytest.raises(ValueError, match=name):
            ex.parameter(name)


def test_a_running_trial_reads_its_own_annotations(ex) -> None:
    a = ex.parameter("a")

    @ex.result
    def double(a):
        ex.set_note(ex.current_trial_id, "by id")
        ex.add_tags("one", "two")
        ex.remove_tags("two")
        return (ex.get_note(), sorted(ex.get_tags()), ex.get_note(ex.current_trial_id))

    assert ex.run(double(a), a=1) == ("by id", ["one"], "by id")


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """Run the ``daskperiment`` command in this process: exit status, output and errors."""
    from daskperiment.cli import main

    capsys.readouterr()
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_the_command_line_sets_and_shows_notes_and_tags(backend, make_experiment, capsys) -> None:
    ex = make_experiment(backend=backend)
    a = ex.parameter("a")

    @ex.result
    def double(a):
        return 2 * a

    for value in range(1, 13):
        ex.run(double(a), a=value)
    spec = str(backend)
    for trial_id in range(1, 13):
        status, out, err = run_cli(capsys, "tag", ex.id, str(trial_id), f"+a{trial_id}", "+common", "--backend", spec)
        assert status == 0 and out == f"a{trial_id}, common\n", err
        if trial_id % 2:
            status, out, err = run_cli(capsys, "note", ex.id, str(trial_id), f"odd {trial_id}\nsecond line", "--backend", spec)
            assert status == 0 and out == f"odd {trial_id}\nsecond line\n", err
    status, out, err = run_cli(capsys, "tag", ex.id, "4", "-common", "-a4", "--add=-x", "--remove", "never", "--backend", spec)
    assert status == 0 and out == "-x\n", err
    history = json.loads(run_cli(capsys, "history", ex.id, "--format", "json", "--backend", spec)[1])
    assert len(history) == 12
    for row in history:
        trial_id = row["Trial ID"]
        assert row["Note"] == (f"odd {trial_id}\nsecond line" if trial_id % 2 else "")
        assert row["Tags"] == ("-x" if trial_id == 4 else f"a{trial_id}, common")
    shown = run_cli(capsys, "show", ex.id, "3", "--backend", spec)[1].splitlines()
    at = next(i for i, line in enumerate(shown) if line.startswith("Note:"))
    assert shown[at].split(None, 1)[1] == "odd 3" and shown[at + 1].strip() == "second line"
    assert shown[at + 1].index("second") == shown[at].index("odd")
    assert any(line.split(None, 1) == ["Tags:", "a3, common"] for line in shown)
    assert run_cli(capsys, "note", ex.id, "3", "--backend", spec)[1] == "odd 3\nsecond line\n"
    assert run_cli(capsys, "note", ex.id, "3", "", "--backend", spec)[0] == 0 and ex.get_note(3) == ""
    for bad, message in [
        (["tag", ex.id, "1", "plain"], "'plain' is neither +TAG (add) nor -TAG (remove)"),
        (["tag", ex.id, "1", "+x", "-x"], "tag 'x' is both added and removed"),
        (["tag", ex.id, "1", "+a,b"], "may not hold a comma"),
        (["note", ex.id, "1", "\x1b[2J"], "control character"),
        (["tag", ex.id, "99", "+x"], "trial 99 of experiment"),
    ]:
        status, out, err = run_cli(capsys, *bad, "--backend", spec)
        assert status in (1, 2) and message in err, (bad, err)
    with pytest.raises(SystemExit):
        run_cli(capsys, "note", ex.id, "1", "x", "--bogus", "--backend", spec)
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    assert ex.get_tags(1) == {"a1", "common"} and ex.get_note(1) == "odd 1\nsecond line"


def test_the_command_line_never_prints_control_characters_a_store_holds(ex, capsys) -> None:
    """Text written into the store by other means than daskperiment is shown escaped."""
    from daskperiment.records import AnnotationEdit

    a = ex.parameter("a")

    @ex.result
    def double(a):
        return 2 * a

    for value in range(3):
        ex.run(double(a), a=value)
    hostile = "\x1b]0;owned\x07\x1b[2Jline one\r\nline two\ttab"
    ex.backend.edit_annotations([AnnotationEdit(2, note=hostile, tags=frozenset({"t\x1b[31m"}))])
    spec = str(ex.backend.directory)
    out = run_cli(capsys, "note", ex.id, "2", "--backend", spec)[1]
    assert out == "\\x1b]0;owned\\x07\\x1b[2Jline one\nline two\ttab\n"
    assert run_cli(capsys, "tag", ex.id, "2", "--backend", spec)[1] == "t\\x1b[31m\n"
    shown = run_cli(capsys, "show", ex.id, "2", "--backend", spec)[1]
    assert "\x1b" not in shown and "\x07" not in shown and "\\x1b]0;owned" in shown
