"""Intermediate values from trials on workers: `metatune.report_intermediate` and
`should_prune` inside an objective that a worker runs.

The driver keeps the only handle on the study, so a worker's reports travel to it: the driver
listens on a socket (loopback unless the executor says otherwise, with a random key that every
connection must prove it holds), stores each report with `study.report` and answers
`should_prune` with the study's pruner, as the sequential `optimize` does.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

from metatune.executors.base import DrivenStudy

__all__ = ["RelayReporter", "ReportRelay"]

log = logging.getLogger("metatune")

_ERRORS: dict[str, type[Exception]] = {"ValueError": ValueError, "TypeError": TypeError}


class ReportRelay:
    """Driver side: serves the reports and prune questions of trials running on workers.

    `lock` is held while the study is used, the driver's own asks and tells holding it too.
    """

    def __init__(self, study: DrivenStudy, lock: threading.Lock, host: str = "127.0.0.1") -> None:
        self._study = study
        self._lock = lock
        self._authkey = secrets.token_bytes(32)
        self._listener = Listener((host, 0), authkey=self._authkey)
        self.address: tuple[str, int] = self._listener.address  # type: ignore[assignment]
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="metatune-relay")

    def reporter(self, number: int) -> RelayReporter:
        """What a worker needs to report for trial `number` (picklable)."""
        return RelayReporter(self.address, self._authkey, number)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn = self._listener.accept()
            except Exception:  # closed, or a client without the key: keep serving the others
                if self._closed.is_set():
                    return
                log.debug("a worker's connection to the report relay failed", exc_info=True)
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        with conn:
            while True:
                try:
                    message = conn.recv()
                except (EOFError, OSError):  # the worker process ended
                    return
                try:
                    reply: tuple[str, Any] = ("ok", self._handle(message))
                except Exception as exc:
                    reply = ("error", (type(exc).__name__, str(exc)))
                try:
                    conn.send(reply)
                except OSError:
                    return

    def _handle(self, message: tuple[Any, ...]) -> Any:
        kind, number, *rest = message
        with self._lock:
            if kind == "report":
                value, step = rest
                self._study.report(number, value, step)
                return None
            if kind == "should_prune":
                return bool(self._study.should_prune(number))
        raise ValueError(f"unknown request {kind!r}")

    def __enter__(self) -> ReportRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        # accept() may stay blocked after close on some platforms: wake it with a connection
        with contextlib.suppress(Exception):
            Client(self.address, authkey=self._authkey).close()
        self._thread.join(timeout=5)


_connections: dict[tuple[str, int], Connection] = {}  # per worker process, one per driver


class RelayReporter:
    """Worker side: the current trial's reporter, talking to the driver's `ReportRelay`."""

    def __init__(self, address: tuple[str, int], authkey: bytes, number: int) -> None:
        self.address = tuple(address)
        self.authkey = authkey
        self.number = number

    def _call(self, message: tuple[Any, ...]) -> Any:
        key = self.address
        for attempt in range(2):
            conn = _connections.get(key)  # type: ignore[arg-type]
            try:
                if conn is None:
                    conn = _connections[key] = Client(key, authkey=self.authkey)  # type: ignore[index]
                conn.send(message)
                kind, payload = conn.recv()
                break
            except (EOFError, OSError) as exc:  # a connection of an earlier driver: once more
                stale = _connections.pop(key, None)  # type: ignore[arg-type]
                if stale is not None:
                    with contextlib.suppress(OSError):
                        stale.close()
                if attempt:
                    raise RuntimeError(
                        f"trial {self.number}: cannot reach the driver at "
                        f"{key[0]}:{key[1]} to report ({exc}); on a cluster, give the Ray "
                        "executor report_host= an address of the driver the nodes can reach"
                    ) from exc
        if kind == "error":
            name, text = payload
            raise _ERRORS.get(name, RuntimeError)(text)
        return payload

    def report(self, value: float, step: int) -> None:
        if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
            value = value.item()  # a 0-d tensor or array: no torch needed on the driver
        self._call(("report", self.number, value, step))

    def should_prune(self) -> bool:
        return bool(self._call(("should_prune", self.number)))
