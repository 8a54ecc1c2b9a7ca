"""Running the dashboard: uvicorn on a socket bound here, so the address (a free port for
port 0) is known before serving and can be printed, or handed to a test or benchmark."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from metatune.storage import BaseStorage

__all__ = ["RunningDashboard", "bind", "is_loopback", "serve", "start_in_thread"]


def require_dashboard() -> None:
    """ImportError with the install line when the web framework is missing."""
    try:
        import plotly  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"the dashboard needs starlette, uvicorn and plotly ({exc.name} is missing): "
            "pip install 'metatune[dashboard]'"
        ) from exc


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); ValueError naming the address when it fails."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def _server(storage: BaseStorage, poll_seconds: float, warm: bool = False) -> Any:
    import uvicorn

    from metatune.report.dashboard.app import create_app

    app = create_app(storage, poll_seconds=poll_seconds, warm=warm)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    return uvicorn.Server(config)


def serve(
    storage: BaseStorage,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    where: str = "",
    note: Callable[[str], None] = print,
    poll_seconds: float = 3.0,
) -> None:
    """Serve the dashboard of `storage` until Ctrl-C, saying where and who can reach it."""
    require_dashboard()
    sock = bind(host, port)
    reach = (
        "loopback only: reachable from this machine alone"
        if is_loopback(host)
        else "reachable from other machines, with no authentication; read-only"
    )
    of = f" of {where}" if where else ""
    note(f"metatune dashboard{of} on {_url(sock)} ({reach}); Ctrl-C stops it.")
    server = _server(storage, poll_seconds, warm=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


@dataclass
class RunningDashboard:
    """A dashboard served from a background thread (`url`); `stop()` ends it."""

    url: str
    server: Any
    thread: threading.Thread
    sock: socket.socket

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> RunningDashboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_in_thread(
    storage: BaseStorage, *, host: str = "127.0.0.1", port: int = 0, poll_seconds: float = 3.0
) -> RunningDashboard:
    """Start the dashboard on a background thread and return once it accepts connections."""
    require_dashboard()
    sock = bind(host, port)
    server = _server(storage, poll_seconds)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the dashboard server did not start")
        time.sleep(0.02)
    return RunningDashboard(_url(sock), server, thread, sock)
