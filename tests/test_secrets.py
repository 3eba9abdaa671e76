"""Secrets never shown or stored: git remote credentials, store passwords in every error."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from test_cli import cli
from test_collector import git

from daskperiment import Experiment
from daskperiment.backend import open_backend
from daskperiment.backend.uri import redact, scrub, secrets, without_credentials
from daskperiment.errors import BackendError, BackendURIError

GIT_SECRETS = ("s3cr3t-token", "hunter2-pw", "tok-query-123", "ghp_usertoken123", "pa/ss#w?rd")
REMOTES = {
    "origin": [
        "https://alice:s3cr3t-token@example.com/project.git",
        "ssh://bob:hunter2-pw@example.com/project.git",
    ],
    "ci": ["https://example.com/project.git?access_token=tok-query-123&depth=1"],
    "gh": ["https://ghp_usertoken123@github.com/team/project.git"],
    "odd": ["https://carol:pa/ss#w?rd@example.com/odd.git"],
    "plain": ["git@github.com:team/project.git"],
}
MASKED = {
    "origin": [
        "https://alice:***@example.com/project.git",
        "ssh://bob:***@example.com/project.git",
    ],
    "ci": ["https://example.com/project.git?access_token=***&depth=1"],
    "gh": ["https://***@github.com/team/project.git"],
    "odd": ["https://carol:***@example.com/odd.git"],
    "plain": ["git@github.com:team/project.git"],
}
GIT_SCRIPT = """
import daskperiment

ex = daskperiment.Experiment(id="gitted")
a = ex.parameter("a")


@ex.result
def double(a):
    return 2 * a


double(a)
"""


def test_git_remote_credentials_are_masked_at_capture(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "experiment.py").write_text(GIT_SCRIPT)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "first")
    for name, urls in REMOTES.items():
        git(repo, "remote", "add", name, urls[0])
        for url in urls[1:]:
            git(repo, "remote", "set-url", "--add", name, url)
    for value in (1, 2):
        run = cli("run", "experiment.py", f"a={value}", cwd=repo)
        assert run.returncode == 0, run.stderr

    stored = b"".join(
        path.read_bytes() for path in (repo / "daskperiment_cache").rglob("*") if path.is_file()
    )
    assert b'"remotes"' in stored  # the environment is there, as plain JSON
    shown = [
        cli(*command, cwd=repo)
        for command in (
            ("show", "gitted", "1"),
            ("history", "gitted"),
            ("diff", "gitted", "1", "2"),
            ("list",),
        )
    ]
    assert all(result.returncode == 0 for result in shown), [r.stderr for r in shown]
    ex = Experiment("gitted", backend=repo / "daskperiment_cache" / "gitted", script_mode=False)
    for trial_id in (1, 2):
        assert ex.get_environment_info(trial_id)["git"]["remotes"] == MASKED
    texts = [ex.get_environment(1, category="git"), ex.get_environment(2), ex.get_history().to_string()]
    texts += [result.stdout + result.stderr for result in shown]
    assert "https://alice:***@example.com/project.git" in ex.get_environment(1, category="git")
    for secret in GIT_SECRETS:
        assert secret.encode() not in stored
        assert not any(secret in text for text in texts), secret
