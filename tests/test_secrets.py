"""Secrets never shown or stored: git remote credentials, store passwords in every error."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pymongo
import pytest
from conftest import ServerProcess, mongo_command, redis_command
from test_cli import cli
from test_collector import git

from daskperiment import Experiment
from daskperiment.backend import experiment_ids
from daskperiment.backend.uri import redact
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


# -- store passwords: never in an error, a log line or a repr ------------------------------------
PASSWORD = "Secr3tA/Secr3tB#Secr3tC?Secr3tD@Secr3tE:Secr3tF"
"""A password holding every character reserved in URIs; no piece of it may be shown."""
WRONG_PASSWORD = "Secr3tWrong/Secr3tX"
SECRET_PIECE = "Secr3t"
USER = "alice"


def login_uri(kind: str, port: int, password: str, *, encoded: bool = True) -> str:
    """URI of the guarded server ``kind`` on ``port`` with ``password`` (percent-encoded or as it is)."""
    secret = quote(password, safe="") if encoded else password
    if kind == "redis":
        return f"redis://:{secret}@127.0.0.1:{port}/0"
    return f"mongodb://{USER}:{secret}@127.0.0.1:{port}/team?authSource=admin&serverSelectionTimeoutMS=3000"


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert SECRET_PIECE not in text and "Secr3" not in text, text


@pytest.fixture(params=["redis", "mongo"])
def guarded_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, ServerProcess]]:
    """A server of each kind that requires :data:`PASSWORD` (Redis ``requirepass``, Mongo SCRAM)."""
    folder = tmp_path_factory.mktemp(f"guarded-{request.param}")
    if request.param == "redis":
        command = redis_command(folder)
        server = ServerProcess(
            lambda port: [*command(port), "--requirepass", PASSWORD], folder / "server.log"
        ).start()
    else:
        command = mongo_command(str(folder / "data"), "--sync-on-commit")  # the user survives the kill
        server = ServerProcess(command, folder / "server.log").start()
        client = pymongo.MongoClient("127.0.0.1", server.port, serverSelectionTimeoutMS=10_000)
        client.admin.command("createUser", USER, pwd=PASSWORD, roles=[{"role": "root", "db": "admin"}])
        client.close()
        server.kill()
        server = ServerProcess(lambda port: [*command(port), "--auth"], folder / "server.log").start()
    yield request.param, server
    server.kill()


def test_a_wrong_password_is_reported_as_failed_authentication(
    guarded_server: tuple[str, ServerProcess], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="daskperiment")
    kind, server = guarded_server
    anonymous = (  # no password at all (Redis: NOAUTH); an unknown user (Mongo)
        f"redis://127.0.0.1:{server.port}/0" if kind == "redis"
        else login_uri(kind, server.port, PASSWORD).replace(f"{USER}:", "mallory:")
    )
    for uri in (login_uri(kind, server.port, WRONG_PASSWORD), anonymous):
        with pytest.raises(BackendError) as opened:
            Experiment("guarded", backend=uri, script_mode=False)
        with pytest.raises(BackendError) as listed:
            experiment_ids(uri)
        command = cli("list", "--backend", uri, cwd=Path.cwd())
        for message in (str(opened.value), str(listed.value), command.stderr):
            assert "authentication failed" in message and redact(uri) in message, message
            assert "cannot reach" not in message
        assert command.returncode != 0
        assert_no_secret(str(opened.value), str(listed.value), command.stdout, command.stderr, caplog.text)


def test_a_password_with_reserved_characters_is_never_shown(
    guarded_server: tuple[str, ServerProcess], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="daskperiment")
    kind, server = guarded_server
    unencoded = login_uri(kind, server.port, PASSWORD, encoded=False)
    with pytest.raises(BackendURIError) as refused:
        Experiment("guarded", backend=unencoded, script_mode=False)
    assert "percent-encode the password" in str(refused.value)
    assert redact(unencoded) in str(refused.value)
    command = cli("history", "guarded", "--backend", unencoded, cwd=Path.cwd())
    assert command.returncode != 0 and "percent-encode the password" in command.stderr

    uri = login_uri(kind, server.port, PASSWORD)
    ex = Experiment("guarded", backend=uri, script_mode=False)
    stop = {"server": False}
    count = ex.parameter("n")

    @ex.result
    def train(n):
        ex.save_metric("loss", 0, 1.0 / n)
        if stop["server"]:
            server.kill()
        return n

    for n in range(1, 25):
        assert ex.run(train(count), n=n) == n
    assert ex.get_history()["Result"].tolist() == list(range(1, 25))
    assert experiment_ids(uri) == ["guarded"]
    listed = cli("list", "--backend", uri, cwd=Path.cwd())
    assert listed.returncode == 0 and "guarded" in listed.stdout
    shown = [repr(ex), repr(ex.backend), repr(pickle.loads(pickle.dumps(ex.backend))), ex.backend.uri]
    assert f"{type(ex.backend).__name__}('{redact(uri)}')" in shown

    stop["server"] = True
    with pytest.raises(BackendError) as spooled:
        ex.run(train(count), n=25)  # the server dies during the trial: spooled
    assert "Nothing is lost" in str(spooled.value) and redact(uri) in str(spooled.value)
    with pytest.raises(BackendError) as unreachable:
        ex.run(train(count), n=26)
    paths = [str(batch.path) for batch in ex.backend.spool.pending()]
    assert len(paths) == 1
    assert_no_secret(
        *shown, str(refused.value), command.stderr, str(spooled.value), str(unreachable.value),
        *paths, caplog.text, listed.stdout, listed.stderr,
    )
