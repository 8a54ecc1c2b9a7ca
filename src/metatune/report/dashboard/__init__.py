"""A local, read-only web dashboard of the studies in a storage: `metatune dashboard`.

Its pages list the studies (state, trial counts, best value) and show each study's figures,
redrawn while workers add trials; trials are read incrementally and large studies are thinned
on the server. Needs the ``dashboard`` extra (starlette, uvicorn, plotly).
"""

from metatune.report.dashboard.server import RunningDashboard, serve, start_in_thread

__all__ = ["RunningDashboard", "create_app", "serve", "start_in_thread"]


def create_app(*args, **kwargs):  # type: ignore[no-untyped-def]
    """The ASGI app (see `metatune.report.dashboard.app.create_app`); imported on first use."""
    from metatune.report.dashboard.app import create_app as make

    return make(*args, **kwargs)
