"""Code files: one file per code version when trials are recorded, a trial's own file on request.

Recording a trial writes no file of its own (ext4 allows 65,000 hard links to
one file, and a file per trial grew the store with its history): the store
keeps ``code/versions/<digest>.py``, and ``ex.code_file(trial_id)`` makes
``code/<id>_<trial>.py``, a link to its version (a copy where no link can be made).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import distributed
import pytest

from daskperiment import Experiment
from daskperiment.errors import TrialIDNotFoundError

TRIALS_PER_VERSION = 20


@pytest.fixture(params=["sync", "threads", "processes", "distributed"])
def scheduler(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """Each scheduler users pick; ``distributed``: a LocalCluster of processes, its client active."""
    if request.param != "distributed":
        yield request.param
        return
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster):
            yield None


def _version(ex: Experiment, factor: int):
    """Define (or redefine, as a re-run notebook cell does) ``train``, returning ``n * factor``."""
    cell = Path(f"cell_{factor}.py").absolute()  # a file: its source can be read back
    cell.write_text(f"@ex.result\ndef train(n):\n    return n * {factor}\n")
    namespace = {"ex": ex, "__name__": "notebook_cell"}  # no such module: pickled by value
    exec(compile(cell.read_text(), str(cell), "exec"), namespace)
    return namespace["train"](ex.parameter("n"))


def _record_two_versions(ex: Experiment, scheduler: str | None) -> dict[int, int]:
    """Trials 1-20 with ``n * 10``, 21-40 with ``n * 20``; returns trial id -> factor."""
    factors = {}
    for factor in (10, 20):
        result = _version(ex, factor)
        for _ in range(TRIALS_PER_VERSION):
            n = len(factors) + 1
            assert ex.run(result, n=n, scheduler=scheduler) == n * factor
            factors[ex.trial_id] = factor
    return factors


def _links_made(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    made: list[tuple[str, str]] = []
    link = os.link

    def counted(source, target, *args, **kwargs):
        made.append((str(source), str(target)))
        return link(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "link", counted)
    return made


def test_trials_write_one_file_per_code_version_and_none_per_trial(
    make_experiment: Callable[..., Experiment], scheduler: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = make_experiment()
    links = _links_made(monkeypatch)
    factors = _record_two_versions(ex, scheduler)
    assert sorted(factors) == list(range(1, 2 * TRIALS_PER_VERSION + 1))
    assert links == []
    folder = ex.backend.code_dir
    assert sorted(p.name for p in folder.iterdir()) == ["versions"]
    digests = {t.trial_id: t.code_digest for t in ex.backend.load_trials()}
    assert len(set(digests.values())) == 2
    assert sorted(p.name for p in (folder / "versions").iterdir()) == sorted(f"{d}.py" for d in set(digests.values()))
    for trial_id, factor in factors.items():
        assert f"return n * {factor}" in (folder / "versions" / f"{digests[trial_id]}.py").read_text()

    for trial_id, factor in factors.items():
        path = ex.code_file(trial_id)
        assert path == folder / f"{ex.id}_{trial_id}.py"
        assert path.read_text() == ex.get_code(trial_id)
        assert f"return n * {factor}" in path.read_text()
        assert os.path.samefile(path, folder / "versions" / f"{digests[trial_id]}.py")
    assert len(links) == len(factors)


def test_code_files_are_copies_where_no_link_can_be_made(
    make_experiment: Callable[..., Experiment], monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = make_experiment()
    factors = _record_two_versions(ex, "sync")
    ex.code_file(1)  # a link, made before the file system refuses more

    def refused(source, target, *args, **kwargs):
        raise OSError(errno.EMLINK, "Too many links", str(source))  # ext4's 65,000th link

    monkeypatch.setattr(os, "link", refused)
    for trial_id, factor in factors.items():
        path = ex.code_file(trial_id)
        assert path.read_text() == ex.get_code(trial_id)
        assert f"return n * {factor}" in path.read_text()
        version = ex.backend.code_dir / "versions" / f"{ex.backend.load_trials([trial_id])[0].code_digest}.py"
        assert not os.path.samefile(path, version)
    assert sorted(p.name for p in ex.backend.code_dir.iterdir() if p.name.startswith(".")) == []


def test_a_code_file_made_again_holds_the_trial_code(make_experiment: Callable[..., Experiment]) -> None:
    ex = make_experiment()
    factors = _record_two_versions(ex, "sync")
    path = ex.code_file(3)
    path.unlink()
    (ex.backend.code_dir / f"{ex.id}_3.py").write_text("edited by hand\n")
    assert ex.code_file(3).read_text() == ex.get_code(3)
    assert f"return n * {factors[3]}" in ex.get_code(3)


def test_a_version_file_removed_is_written_again_on_request(make_experiment: Callable[..., Experiment]) -> None:
    ex = make_experiment()
    _record_two_versions(ex, "sync")
    for version in (ex.backend.code_dir / "versions").iterdir():
        version.unlink()
    assert ex.code_file(40).read_text() == ex.get_code(40)
    assert "return n * 20" in ex.get_code(40)


def test_code_files_of_a_server_store_go_to_the_working_directory(server_uri: str, tmp_path: Path) -> None:
    ex = Experiment("served_code", backend=server_uri)
    factors = _record_two_versions(ex, "sync")
    folder = tmp_path / "daskperiment_cache" / "served_code" / "code"
    for trial_id, factor in factors.items():
        path = ex.code_file(trial_id)
        assert path == folder / f"served_code_{trial_id}.py"
        assert f"return n * {factor}" in path.read_text()
        assert path.read_text() == ex.get_code(trial_id)


@pytest.mark.parametrize("trial_id", [0, 41, -1, "1", 1.0, True])
def test_a_code_file_of_an_unknown_trial_is_a_clear_error(
    make_experiment: Callable[..., Experiment], trial_id: object
) -> None:
    ex = make_experiment()
    _record_two_versions(ex, "sync")
    with pytest.raises(TrialIDNotFoundError, match="Unable to find trial id"):
        ex.code_file(trial_id)  # type: ignore[arg-type]
    assert sorted(p.name for p in ex.backend.code_dir.iterdir()) == ["versions"]
