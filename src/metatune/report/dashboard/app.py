"""The dashboard's web app (Starlette): pages and the JSON endpoints they poll. Read-only: every
route is a GET and the storage is opened for reading.

Routes: ``/`` (the studies), ``/study?name=N`` (one study's plots and trials),
``/api/studies``, ``/api/study?name=N[&version=V]`` (summary and figures; only
``{"changed": false}`` while the study's version is still V), ``/api/trials?name=N&page=P``
(one page of trials), ``/api/importance?name=N`` (the parameter-importance figure), ``/static/plotly.min.js`` (the installed plotly's bundle).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from metatune.report.dashboard.cache import StudyCache, StudyEntry
from metatune.report.dashboard.pages import index_page, study_page
from metatune.report.export import jsonable, trial_rows
from metatune.report.figures import FigureSpec, all_figures, importance_figure
from metatune.report.html import summary_rows
from metatune.report.importance import MIN_TRIALS
from metatune.storage import BaseStorage, StudyRecord
from metatune.trial import TrialState

__all__ = ["MAX_PER_PAGE", "create_app"]

MAX_PER_PAGE = 500
IMPORTANCE = "importance"  # the figure served on its own (/api/importance)
_SORTS = ("number", "value")


@functools.lru_cache(maxsize=1)
def _plotly_js() -> bytes:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs().encode("utf-8")


def _list_state(n_trials: int, counts: dict[str, int]) -> str:
    """A study's state in the list: empty, running while any trial runs, else idle."""
    return "empty" if not n_trials else ("running" if counts.get("running") else "idle")


def _study_summary(entry: StudyEntry) -> dict[str, Any]:
    view = entry.view()
    counts = view.counts()
    best = view.best()
    state = _list_state(len(view.trials), counts)
    return {
        "name": view.name,
        "direction": view.direction,
        "optimizer": view.optimizer,
        "state": state,
        "n_trials": len(view.trials),
        "counts": counts,
        "best_value": None if best is None else jsonable(best.value),
        "best_number": None if best is None else best.number,
        "pipeline": view.is_pipeline,
        "directions": view.directions,
        # a multi-objective study has no best value: the size of its Pareto front instead
        "n_pareto": len(view.pareto()) if view.is_multi_objective else None,
    }


def _stored_summary(storage: BaseStorage, record: StudyRecord) -> dict[str, Any]:
    """A study's row of the list from the storage's aggregate counts, while its trials are
    still being read; a multi-objective study's Pareto front needs the trials, so its row says
    "reading" until they are in."""
    summary = storage.summarize_study(record)
    return {
        "name": record.name,
        "direction": record.direction,
        "optimizer": record.optimizer,
        "state": "reading" if record.directions else _list_state(summary.n_trials, summary.counts),
        "n_trials": summary.n_trials,
        "counts": summary.counts,
        "best_value": None if summary.best_value is None else jsonable(summary.best_value),
        "best_number": summary.best_number,
        "directions": record.directions,
        "n_pareto": None,
    }


def _meta(spec: FigureSpec, view: Any) -> dict[str, str]:
    return {"key": spec.key, "title": spec.title_for(view), "caption": spec.caption_for(view)}


def _figure_entry(spec: FigureSpec, fig: Any, view: Any) -> str:
    """One figure as JSON text: plotly's own encoding, not parsed and encoded again."""
    meta = json.dumps(_meta(spec, view))
    return meta[:-1] + ', "figure": ' + fig.to_json() + "}"


def _figures_payload(entry: StudyEntry) -> bytes:
    """The study's summary and figures (all but the importance, which has its own endpoint,
    since a forest fit would hold up the page) as JSON, rebuilt only when the study changed.

    Built under the entry's build lock, not its lock, so the study list and trial pages never
    wait for a build."""
    with entry.build_lock:
        with entry.lock:
            if entry.figures is not None and entry.figures_version == entry.version:
                return entry.figures
            view = entry.view()
            version = entry.version
            summary = _study_summary(entry)
        figures = []
        for spec in all_figures():
            if spec.key == IMPORTANCE:
                if len(view.completed()) >= MIN_TRIALS:
                    figures.append(json.dumps({**_meta(spec, view), "deferred": True}))
                continue
            fig = spec.build(view)
            if fig is not None:
                figures.append(_figure_entry(spec, fig, view))
        head = json.dumps(
            {
                "changed": True,
                "version": version,
                "summary": [list(r) for r in summary_rows(view)],
                "study": summary,
            },
            allow_nan=False,
        )
        payload = (head[:-1] + ', "figures": [' + ", ".join(figures) + "]}").encode("utf-8")
        with entry.lock:
            entry.figures, entry.figures_version = payload, version
        return payload


def _warm_imports() -> None:
    """Import what requests use before serving any: plotly looks optional modules (pandas) up
    in sys.modules, so two requests importing them at once in the thread pool can see a
    half-initialized module."""
    import contextlib
    import importlib

    for name in (
        "plotly.graph_objects",
        "plotly.subplots",
        "plotly.io",
        "sklearn.ensemble",
        "sklearn.inspection",
        "pandas",
    ):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _warm(cache: StudyCache) -> None:
    """Read every study's trials, then build its figures, so the first pages a person opens
    find them ready."""
    import contextlib

    with contextlib.suppress(Exception):  # a request will report whatever went wrong
        records = cache.studies()
        entries = [cache.entry(r.name) for r in records]
        for entry in entries:
            if entry is not None:
                _figures_payload(entry)


def create_app(storage: BaseStorage, *, poll_seconds: float = 3.0, warm: bool = False) -> Any:
    """The dashboard of the studies in `storage` as an ASGI app (pages poll every
    `poll_seconds`). With `warm`, a background thread starts reading every study's trials and
    building its figures at once (a request for a study being read waits for that read instead
    of starting another)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    _warm_imports()
    cache = StudyCache(storage)
    if warm:
        import threading

        threading.Thread(target=_warm, args=(cache,), name="dashboard-warm", daemon=True).start()

    def _error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def _entry(request: Request) -> StudyEntry | JSONResponse:
        name = request.query_params.get("name")
        if not name:
            return _error(400, "name is required: the study's name, e.g. ?name=my-study")
        entry = cache.entry(name)
        if entry is None:
            known = [s.name for s in cache.studies()]
            return _error(404, f"no study named {name!r}; studies: {known}")
        return entry

    def index(request: Request) -> HTMLResponse:
        return HTMLResponse(index_page(poll_seconds))

    def study(request: Request) -> HTMLResponse:
        name = request.query_params.get("name", "")
        if cache.entry(name) is None:
            return HTMLResponse(study_page(name, poll_seconds, missing=True), status_code=404)
        return HTMLResponse(study_page(name, poll_seconds))

    def api_studies(request: Request) -> JSONResponse:
        # ?wait=0: studies whose trials are still being read come as name and direction
        # ("state": "reading"), so a page can list them at once and fill in the rest.
        wait = request.query_params.get("wait", "1") != "0"
        out = []
        for record in cache.studies():
            entry = cache.entry(record.name) if wait else cache.read_entry(record.name)
            if entry is None:
                out.append(_stored_summary(storage, record))
                continue
            with entry.lock:
                out.append(_study_summary(entry))
        return JSONResponse({"studies": out})

    def api_study(request: Request) -> JSONResponse:
        entry = _entry(request)
        if isinstance(entry, JSONResponse):
            return entry
        with entry.lock:
            version = entry.version
        if request.query_params.get("version") == version:
            return JSONResponse({"changed": False, "version": version})
        return Response(_figures_payload(entry), media_type="application/json")

    def api_importance(request: Request) -> Response:
        entry = _entry(request)
        if isinstance(entry, JSONResponse):
            return entry
        with entry.lock:
            view = entry.view()
            version = entry.version
        spec = next(s for s in all_figures() if s.key == IMPORTANCE)
        with entry.build_lock:  # the fit and its memo are the entry's, one at a time
            fig = importance_figure(view, lambda v, k: cache.importance(entry, v, k))
        if fig is None:
            return JSONResponse({"version": version, "figure": None})
        body = (
            '{"version": '
            + json.dumps(version)
            + ', "figure": '
            + _figure_entry(spec, fig, view)
            + "}"
        )
        return Response(body.encode("utf-8"), media_type="application/json")

    def api_trials(request: Request) -> JSONResponse:
        entry = _entry(request)
        if isinstance(entry, JSONResponse):
            return entry
        q = request.query_params
        try:
            page = int(q.get("page", "0"))
            per_page = int(q.get("per_page", "50"))
        except ValueError:
            return _error(400, "page and per_page must be integers")
        if page < 0 or not 1 <= per_page <= MAX_PER_PAGE:
            return _error(400, f"page must be >= 0 and per_page in [1, {MAX_PER_PAGE}]")
        sort = q.get("sort", "number")
        if sort not in _SORTS:
            return _error(400, f"sort must be one of {', '.join(_SORTS)}, got {sort!r}")
        state = q.get("state") or None
        if state is not None and state not in {s.value for s in TrialState}:
            allowed = ", ".join(s.value for s in TrialState)
            return _error(400, f"state must be one of {allowed}, got {state!r}")
        with entry.lock:
            view = entry.view()
        trials = view.trials
        if state is not None:
            trials = [t for t in trials if t.state.value == state]
        if sort == "value":
            good = {t.number for t in view.completed()}
            done = [t for t in trials if t.number in good]
            rest = [t for t in trials if t.number not in good]
            trials = sorted(done, key=lambda t: view.sign * float(t.value)) + rest  # type: ignore[arg-type]
        else:
            trials = list(reversed(trials))  # the newest first
        rows = trial_rows(trials[page * per_page : (page + 1) * per_page])
        return JSONResponse(
            {"total": len(trials), "page": page, "per_page": per_page, "rows": rows}
        )

    def plotly_js(request: Request) -> Response:
        return Response(
            _plotly_js(),
            media_type="application/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    routes = [
        Route("/", index),
        Route("/study", study),
        Route("/api/studies", api_studies),
        Route("/api/study", api_study),
        Route("/api/trials", api_trials),
        Route("/api/importance", api_importance),
        Route("/static/plotly.min.js", plotly_js),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
    ]
    app = Starlette(routes=routes)
    app.state.cache = cache
    return app
