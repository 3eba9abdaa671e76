"""The Bokeh server of the dashboard: blocking, or running in a background thread."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading
import webbrowser
from typing import Callable

from bokeh.application import Application
from bokeh.application.handlers.function import FunctionHandler
from bokeh.document import Document
from bokeh.server.server import Server
from tornado.ioloop import IOLoop

from daskperiment.backend import Backend
from daskperiment.board.app import Dashboard
from daskperiment.board.download import ROUTE, ArtifactHandler
from daskperiment.board.errors import DashboardError
from daskperiment.board.export import ROUTE as EXPORT_ROUTE
from daskperiment.board.export import ExportHandler, Exports
from daskperiment.board.store import Artifacts, TrialCache, open_artifacts, open_store

logger = logging.getLogger(__name__)

_WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _origins(host: str, port: int) -> list[str]:
    """Host names a browser may use to reach the server (the websocket checks them)."""
    names = {"localhost", "127.0.0.1"}
    if host not in _WILDCARD_HOSTS:
        names.add(host)
    else:
        names.update({socket.gethostname(), socket.getfqdn()})
    return sorted(f"{name}:{port}" for name in names)


def _application(cache: TrialCache, store: str, exports: Exports) -> Application:
    def make_document(doc: Document) -> None:
        Dashboard(doc, cache, store, exports)

    return Application(FunctionHandler(make_document))


class BoardServer:
    """The dashboard server of one experiment: :meth:`run` blocks, :meth:`start` serves in the background.

    Parameters
    ----------
    experiment_id : str
        Id of an existing experiment.
    backend : {"local"}, pathlib.Path, str URI or Backend
        Its store (see :func:`daskperiment.board.store.open_store`).
    host : str
        Address to listen on.
    port : int
        Port to listen on; 0 picks a free one.
    artifacts : str, pathlib.Path, ArtifactStore or None, default None
        Where the experiment's artifacts are (see
        :func:`daskperiment.board.store.open_artifacts`); files are served from
        there at ``/artifact/<trial id>/<digest>``. The trials a page's filters
        match are served as CSV at ``/export/<page token>/<name>.csv``.

    Attributes
    ----------
    url : str
        Address of the dashboard, e.g. ``http://127.0.0.1:5006/``.

    Raises
    ------
    daskperiment.BackendError
        When the store holds no such experiment, or cannot be read.
    daskperiment.ArtifactError
        When the artifact location cannot be opened.
    """

    def __init__(self, experiment_id: str, backend: str | os.PathLike[str] | Backend, host: str,
                 port: int, artifacts: Artifacts = None) -> None:
        store = open_store(experiment_id, backend)
        cache = TrialCache(store)
        cache.refresh()  # fails now, with a clear error, if the store cannot be read
        exports = Exports()
        self._routes = [
            (ROUTE, ArtifactHandler, {"backend": store, "artifacts": open_artifacts(store, artifacts)}),
            (EXPORT_ROUTE, ExportHandler, {"cache": cache, "exports": exports}),
        ]
        self.experiment_id = experiment_id
        self._host = host
        self._port = port or _free_port(host)
        self._application = _application(cache, repr(store), exports)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        shown = "127.0.0.1" if host in _WILDCARD_HOSTS else host
        self.url = f"http://{f'[{shown}]' if ':' in shown else shown}:{self._port}/"

    def _make_server(self) -> Server:
        try:
            return Server(
                {"/": self._application}, io_loop=IOLoop.current(), address=self._host, port=self._port,
                allow_websocket_origin=_origins(self._host, self._port), extra_patterns=self._routes,
            )
        except OSError as exc:
            raise DashboardError(
                f"cannot serve the dashboard on {self._host}:{self._port}: {exc.strerror or exc}; "
                "choose another port (--port N, or port=0 for any free one)"
            ) from exc

    def when_ready(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` once :meth:`run` listens (from its event loop)."""
        IOLoop.current().add_callback(callback)

    def run(self) -> None:
        """Serve in this thread until interrupted (Ctrl+C)."""
        self._server = self._make_server()
        self._server.start()
        logger.info("dashboard of %r at %s (Ctrl+C stops it)", self.experiment_id, self.url)
        try:
            self._server.io_loop.start()
        except KeyboardInterrupt:
            logger.info("dashboard at %s interrupted", self.url)
        finally:
            self._server.stop()

    def start(self) -> BoardServer:
        """Serve from a background (daemon) thread; return once the server listens."""
        ready = threading.Event()
        failure: list[Exception] = []

        def serve() -> None:
            asyncio.set_event_loop(asyncio.new_event_loop())
            try:
                self._server = self._make_server()
                self._server.start()
            except Exception as exc:  # noqa: BLE001 - raised again in the starting thread
                failure.append(exc)
                return
            finally:
                ready.set()
            self._server.io_loop.start()
            self._server.io_loop.close(all_fds=True)

        self._thread = threading.Thread(target=serve, name="daskperiment-board", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        logger.info("dashboard of %r at %s", self.experiment_id, self.url)
        return self

    def stop(self) -> None:
        """Stop a server started with :meth:`start` (and wait for its thread)."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return

        def shutdown() -> None:
            server.stop()
            server.io_loop.stop()

        server.io_loop.add_callback(shutdown)
        thread.join(timeout=30)
        self._server = self._thread = None

    def __repr__(self) -> str:
        return f"BoardServer({self.url!r})"

    def _repr_html_(self) -> str:
        from html import escape

        return f'Dashboard running at <a href="{escape(self.url)}" target="_blank">{escape(self.url)}</a>'

    def show(self) -> None:
        """Open the dashboard in a web browser."""
        webbrowser.open(self.url)


def interactive_session() -> bool:
    """Whether Python runs interactively: a REPL, ``python -i``, IPython or Jupyter."""
    if hasattr(sys, "ps1") or sys.flags.interactive:
        return True
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    return get_ipython is not None and get_ipython() is not None


def start(experiment_id: str, backend: str | os.PathLike[str] | Backend = "local",
          host: str = "127.0.0.1", port: int = 5006, artifacts: Artifacts = None) -> BoardServer:
    """Start the dashboard in a background thread (for Jupyter and tests).

    Parameters
    ----------
    experiment_id : str
        Id of an existing experiment.
    backend : {"local"}, pathlib.Path, str URI or Backend, default "local"
        Its store (see :func:`daskperiment.board.store.open_store`).
    host : str, default "127.0.0.1"
        Address to listen on; only this machine can connect by default.
    port : int, default 5006
        Port to listen on; 0 picks a free one.
    artifacts : str, pathlib.Path, ArtifactStore or None, default None
        Where the experiment's artifacts are: None for its default location
        (see :func:`daskperiment.board.store.open_artifacts`).

    Returns
    -------
    BoardServer
        The running server: its ``url``, and ``stop()``.

    Raises
    ------
    daskperiment.BackendError
        When the store holds no such experiment, or cannot be reached.
    daskperiment.ArtifactError
        When the artifact location cannot be opened.
    daskperiment.board.DashboardError
        When the port is taken.
    """
    return BoardServer(experiment_id, backend, host, port, artifacts).start()


def serve(experiment_id: str, backend: str | os.PathLike[str] | Backend = "local",
          host: str = "127.0.0.1", port: int = 5006, show: bool = False, artifacts: Artifacts = None) -> None:
    """Serve the dashboard until interrupted (blocks).

    Parameters are those of :func:`start`; ``show`` also opens it in a web browser.
    """
    board = BoardServer(experiment_id, backend, host, port, artifacts)
    if show:
        board.when_ready(board.show)
    board.run()

