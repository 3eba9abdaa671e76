"""The dashboard: a Bokeh server application over the store of an experiment.

``serve(ID)`` blocks until interrupted; ``start(ID)`` runs it in a background
thread and returns a handle with its ``url`` and ``stop()``.
"""

from daskperiment.board.errors import DashboardError, ExperimentNotFoundError
from daskperiment.board.server import BoardServer, interactive_session, serve, start

__all__ = ["BoardServer", "DashboardError", "ExperimentNotFoundError", "interactive_session", "serve", "start"]
