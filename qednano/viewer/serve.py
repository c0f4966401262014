"""Serving the viewer: bind a socket first (so the printed port is the one in use), then uvicorn."""

from __future__ import annotations

import socket
import threading
import webbrowser

import uvicorn

from qednano.viewer.app import create_app
from qednano.viewer.rundirs import RunSet


def bind(host: str, port: int | None) -> socket.socket:
    """A listening socket on `host:port`, or on a free port the system picks when `port` is None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port or 0))
    except OSError as err:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port or 0} ({err.strerror}); choose another --port") from err
    sock.listen(128)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(runs: RunSet, sock: socket.socket, open_browser: bool) -> None:
    """Serve until interrupted; opens the default browser on the index page when asked."""
    host = sock.getsockname()[0]
    hosts = sorted({host, f"[{host}]", "127.0.0.1", "localhost", "[::1]"})
    config = uvicorn.Config(create_app(runs, hosts=hosts), log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    if open_browser:
        # opened from a timer so the page is requested after the server has started
        threading.Timer(0.5, webbrowser.open, args=(url_of(sock),)).start()
    server.run(sockets=[sock])
