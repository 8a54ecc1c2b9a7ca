"""The dashboard's pages and JSON endpoints, through Starlette's TestClient (no browser)."""

from __future__ import annotations

from pathlib import Path

import pytest

from metatune import Study
from metatune.report.dashboard.server import bind, is_loopback
from metatune.storage import get_storage

pytest.importorskip("starlette")
pytest.importorskip("plotly")
from starlette.testclient import TestClient  # noqa: E402

from metatune.report.dashboard import create_app  # noqa: E402


def _make_storage(folder: Path, study_makers: tuple) -> str:
    """A sqlite storage with a plain study (one trial running) and a pipeline study."""
    make_failing_study, make_pipeline_study = study_makers
    url = f"sqlite:///{folder / 'runs.db'}"
    study = make_failing_study(url, n_trials=20)
    study.ask()
    make_pipeline_study(folder / "cache", budget=20, storage=url)
    return url


@pytest.fixture(scope="module")
def shared_url(tmp_path_factory: pytest.TempPathFactory, study_makers: tuple) -> str:
    """The storage of the tests that only read (made once)."""
    return _make_storage(tmp_path_factory.mktemp("dashboard"), study_makers)


@pytest.fixture
def url(tmp_path: Path, study_makers: tuple) -> str:
    """A storage of its own, for a test that adds trials."""
    return _make_storage(tmp_path, study_makers)


@pytest.fixture(scope="module")
def client(shared_url: str) -> TestClient:
    return TestClient(create_app(get_storage(shared_url, read_only=True), poll_seconds=0.5))


def test_the_study_list_shows_state_counts_and_best(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "metatune dashboard" in page.text
    studies = {s["name"]: s for s in client.get("/api/studies").json()["studies"]}
    assert set(studies) == {"plain", "pipe"}
    plain = studies["plain"]
    assert plain["state"] == "running" and plain["counts"]["running"] == 1
    assert plain["n_trials"] == 21 and plain["counts"]["failed"] > 0
    assert plain["best_value"] is not None and plain["best_number"] is not None
    assert studies["pipe"]["state"] == "idle" and studies["pipe"]["pipeline"] is True


def test_a_study_page_and_its_figures(client: TestClient) -> None:
    page = client.get("/study", params={"name": "pipe"})
    assert page.status_code == 200 and "static/plotly.min.js" in page.text
    d = client.get("/api/study", params={"name": "pipe"}).json()
    assert d["changed"] is True and d["version"]
    keys = [f["key"] for f in d["figures"]]
    assert keys[:3] == ["history", "history-time", "history-cost"]
    assert {"budget", "stage-cost", "cache", "parallel", "slice"} <= set(keys)
    assert all(f["figure"]["data"] for f in d["figures"] if f["key"] != "importance")
    # Importance (a forest fit) comes on its own, so it does not hold up the page.
    (deferred,) = [f for f in d["figures"] if f["key"] == "importance"]
    assert deferred["deferred"] is True and "figure" not in deferred
    imp = client.get("/api/importance", params={"name": "pipe"}).json()
    assert imp["version"] == d["version"] and imp["figure"]["figure"]["data"][0]["type"] == "bar"
    assert dict(d["summary"])["pipeline stages"] == "prep -> train -> evaluate"
    same = client.get("/api/study", params={"name": "pipe", "version": d["version"]}).json()
    assert same == {"changed": False, "version": d["version"]}
    js = client.get("/static/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000


def test_new_trials_show_up_and_only_they_are_read_again(url: str) -> None:
    app = create_app(get_storage(url, read_only=True))
    client = TestClient(app)
    first = client.get("/api/study", params={"name": "plain"}).json()
    cache = app.state.cache
    read = cache.reads
    assert read == 21
    writer = Study(name="plain", storage=url)
    running = next(t for t in writer.trials if not t.state.finished)
    writer.tell(running.number, 1.5)
    writer.optimize(lambda p: p["x"] ** 2, n_trials=3, show_progress=False)
    again = client.get("/api/study", params={"name": "plain", "version": first["version"]}).json()
    assert again["changed"] is True and again["version"] != first["version"]
    assert dict(again["summary"])["trials"].startswith("24 (0 running")
    # Finished trials are never read twice: only the one that was running and the 3 new ones.
    assert cache.reads - read == 4


def test_trials_are_paged_and_sorted(client: TestClient) -> None:
    d = client.get("/api/trials", params={"name": "plain", "per_page": 5}).json()
    assert d["total"] == 21 and len(d["rows"]) == 5
    assert [r["number"] for r in d["rows"]] == [20, 19, 18, 17, 16]  # newest first
    last = client.get("/api/trials", params={"name": "plain", "per_page": 5, "page": 4}).json()
    assert [r["number"] for r in last["rows"]] == [0]
    best = client.get("/api/trials", params={"name": "plain", "sort": "value"}).json()["rows"]
    values = [r["value"] for r in best if r["state"] == "complete"]
    assert values == sorted(values) and best[0]["state"] == "complete"
    failed = client.get("/api/trials", params={"name": "plain", "state": "failed"}).json()
    assert failed["total"] > 0 and {r["state"] for r in failed["rows"]} == {"failed"}
    assert "diverged <b>" in failed["rows"][0]["error"]  # JSON carries text; pages set textContent


@pytest.mark.parametrize(
    ("params", "status", "fragment"),
    [
        ({}, 400, "name is required"),
        ({"name": "nope"}, 404, "no study named 'nope'"),
        ({"name": "plain", "page": "x"}, 400, "integers"),
        ({"name": "plain", "per_page": "0"}, 400, "per_page in [1, 500]"),
        ({"name": "plain", "sort": "cost"}, 400, "sort must be one of number, value"),
        ({"name": "plain", "state": "done"}, 400, "state must be one of"),
    ],
)
def test_bad_requests_say_what_is_allowed(
    client: TestClient, params: dict, status: int, fragment: str
) -> None:
    r = client.get("/api/trials", params=params)
    assert r.status_code == status and fragment in r.json()["error"]


def test_it_is_read_only(client: TestClient) -> None:
    for path in ("/", "/api/studies", "/api/study", "/api/trials"):
        assert client.post(path).status_code == 405
    assert client.get("/study", params={"name": "nope"}).status_code == 404


def test_an_empty_storage_and_an_empty_study(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    from metatune import Float

    Study({"x": Float(0, 1)}, name="empty", storage=url, optimizer="random")
    client = TestClient(create_app(get_storage(url, read_only=True)))
    (s,) = client.get("/api/studies").json()["studies"]
    assert s["state"] == "empty" and s["n_trials"] == 0 and s["best_value"] is None
    d = client.get("/api/study", params={"name": "empty"}).json()
    assert d["figures"] == []


def test_loopback_and_binding() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")
    sock = bind("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        with pytest.raises(ValueError, match=f"cannot listen on 127.0.0.1:{port}"):
            bind("127.0.0.1", port)
    finally:
        sock.close()


def test_warm_start_reads_every_study_once(shared_url: str) -> None:
    import time

    app = create_app(get_storage(shared_url, read_only=True), warm=True)
    cache = app.state.cache
    n = sum(len(cache.storage.get_trials(r.id)) for r in cache.studies())
    deadline = time.monotonic() + 60
    while cache.reads < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cache.reads == n
    client = TestClient(app)
    client.get("/api/studies")
    assert cache.reads == n + 1  # only the running trial is read again
    # The list can come at once, before the trials are read: names, and "reading".
    cold = create_app(get_storage(shared_url, read_only=True))
    quick = TestClient(cold).get("/api/studies", params={"wait": "0"}).json()["studies"]
    assert {s["name"] for s in quick} == {"plain", "pipe"}
    assert {s["state"] for s in quick} <= {"reading", "running", "idle"}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the reads it started in the background finish
        quick = TestClient(cold).get("/api/studies", params={"wait": "0"}).json()["studies"]
        if all(s["state"] != "reading" for s in quick):
            break
        time.sleep(0.05)
    stored = {r.name: len(cache.storage.get_trials(r.id)) for r in cache.studies()}
    assert {s["name"]: s["n_trials"] for s in quick} == stored


def test_study_list_comes_complete_before_the_trials_are_read(shared_url: str) -> None:
    # A cold server answers the list from the storage's aggregate counts: a single-objective
    # study's counts and best value are there at once, equal to what reading its trials gives.
    cold = TestClient(create_app(get_storage(shared_url, read_only=True)))
    quick = {s["name"]: s for s in cold.get("/api/studies", params={"wait": "0"}).json()["studies"]}
    full = {s["name"]: s for s in cold.get("/api/studies").json()["studies"]}
    assert set(quick) == set(full)
    for name, row in quick.items():
        assert row["state"] == full[name]["state"] != "reading"
        for key in ("n_trials", "counts", "best_value", "best_number", "direction"):
            assert row[key] == full[name][key], (name, key)
