"""Errors of the dashboard: each says what is wrong and what to do."""

from __future__ import annotations

from daskperiment.errors import DaskperimentError, ExperimentNotFoundError

__all__ = ["DashboardError", "ExperimentNotFoundError"]


class DashboardError(DaskperimentError):
    """The dashboard cannot be served, e.g. its port is taken."""
