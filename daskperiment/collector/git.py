"""State of the git repository the trial runs in, read with GitPython."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from typing import Any

from daskperiment.backend.uri import redact
from daskperiment.collector.base import Collector

logger = logging.getLogger(__name__)


def _status(porcelain: str) -> tuple[list[str], list[str]]:
    """Modified and untracked paths from ``git status --porcelain=v1 -z`` output."""
    modified: list[str] = []
    untracked: list[str] = []
    entries = iter(porcelain.split("\0"))
    for entry in entries:
        if not entry:
            continue
        code, path = entry[:2], entry[3:]
        if code[0] in "RC":
            next(entries, None)  # the path the file was renamed or copied from
        (untracked if code == "??" else modified).append(path)
    return modified, untracked


def _missing_tool() -> str | None:
    """What prevents reading the repository, if anything: the git executable or GitPython."""
    if shutil.which("git") is None:
        return "the git executable is not on the PATH"
    if importlib.util.find_spec("git") is None:
        return 'GitPython is not installed (pip install "daskperiment[git]")'
    return None


class GitCollector(Collector):
    """Branch, HEAD commit, remotes and uncommitted changes of the current repository.

    The repository is searched from the current working directory upwards.
    Outside a repository, or when git fails, nothing is collected; without
    git or GitPython, why not.
    """

    category = "git"
    labels = {
        "working_dir": "Git Repository",
        "branch": "Git Active Branch",
        "commit": "Git HEAD Commit",
        "remotes": "Git Remotes",
        "modified": "Git Modified Files",
        "untracked": "Git Untracked Files",
        "unavailable": "Git Repository",
    }

    def collect(self) -> dict[str, Any]:
        """Gather the repository state.

        Returns
        -------
        dict of str to Any
            ``working_dir``, ``branch`` (``"DETACHED"`` for a detached HEAD),
            ``commit`` (``None`` before the first commit), ``remotes`` (name to
            urls, their passwords and tokens shown as ``***``), ``modified``
            and ``untracked`` (paths relative to the working directory; an
            untracked directory is listed once, with a trailing slash). Empty outside a repository. Without the git
            executable or GitPython (the ``daskperiment[git]`` extra), only
            ``unavailable``: why nothing could be read.
        """
        missing = _missing_tool()
        if missing is not None:
            logger.debug("no git information collected: %s", missing)
            return {"unavailable": f"not captured, {missing}"}
        import git

        try:
            with git.Repo(os.getcwd(), search_parent_directories=True) as repo:
                try:
                    branch = repo.active_branch.name
                except TypeError:
                    branch = "DETACHED"
                modified, untracked = _status(
                    repo.git.status("--porcelain=v1", "-z", "--untracked-files=normal")
                )
                return {
                    "working_dir": repo.working_tree_dir,
                    "branch": branch,
                    "commit": repo.head.commit.hexsha if repo.head.is_valid() else None,
                    "remotes": {remote.name: [redact(url) for url in remote.urls] for remote in repo.remotes},
                    "modified": modified,
                    "untracked": untracked,
                }
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            logger.debug("not in a git repository: no git information collected")
        except git.GitError as exc:
            logger.warning("git information could not be collected: %s", exc)
        return {}
