"""The group-commit thread that records a sweep's trials: grouping, order, failures, closing."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from daskperiment.groupcommit import GroupCommit


class Log:
    """What a GroupCommit did: the groups written, the groups that failed, the items done."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.groups: list[list[int]] = []
        self.failed: list[list[int]] = []
        self.after: list[int] = []
        self.first_write_started = threading.Event()
        self.release_first_write = threading.Event()
        self._fail_on = fail_on

    def write(self, group: Sequence[int]) -> None:
        if not self.groups:
            self.first_write_started.set()
            self.release_first_write.wait(10)
        self.groups.append(list(group))
        if self._fail_on in group:
            raise RuntimeError("refused")

    def on_failure(self, group: Sequence[int]) -> None:
        self.failed.append(list(group))


def test_items_arriving_during_a_write_are_written_together_in_order() -> None:
    log = Log()
    commit = GroupCommit(log.write, log.on_failure, log.after.append, "test")
    commit.put(0)
    assert log.first_write_started.wait(10)
    for item in range(1, 50):
        commit.put(item)
    log.release_first_write.set()
    commit.close()
    assert log.groups == [[0], list(range(1, 50))]
    assert log.after == list(range(50)) and log.failed == []


def test_a_failed_group_is_handed_to_the_failure_callback_and_the_others_go_on() -> None:
    log = Log(fail_on=3)
    log.release_first_write.set()
    commit = GroupCommit(log.write, log.on_failure, log.after.append, "test")
    for item in range(10):
        commit.put(item)
        if item == 0:
            assert log.first_write_started.wait(10)
    commit.close()
    assert sorted(i for group in log.groups for i in group) == list(range(10))
    assert [3 in group for group in log.failed] == [True]
    assert log.after == list(range(10))


def test_close_writes_everything_handed_over_and_stops_the_thread() -> None:
    log = Log()
    log.release_first_write.set()
    commit = GroupCommit(log.write, log.on_failure, log.after.append, "test-close")
    for item in range(1000):
        commit.put(item)
    commit.close()
    assert [i for group in log.groups for i in group] == list(range(1000))
    assert not any(t.name == "test-close" for t in threading.enumerate())


def test_an_error_after_writing_one_item_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    log = Log()
    log.release_first_write.set()
    done: list[int] = []

    def after(item: int) -> None:
        if item == 2:
            raise ValueError("display broken")
        done.append(item)

    commit = GroupCommit(log.write, log.on_failure, after, "test")
    for item in range(5):
        commit.put(item)
    commit.close()
    assert done == [0, 1, 3, 4]
    assert "display broken" in caplog.text
