"""Running an app: the listening socket, uvicorn in the foreground (`serve`) or in a
background thread (`running`: notebooks, tests), and a log without query strings."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI

from pressedplay.errors import UserError

# The names a browser uses for this machine: the only Host headers served by default.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


class _NoQueryStrings(logging.Filter):
    """uvicorn's access log prints each request's query string; /callback's carries the
    login code. Logged paths keep `?` to show a query was there, not what it said."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path, mark, _ = args[2].partition("?")
            record.args = (*args[:2], path + mark, *args[3:])
        return True


def quiet_access_log() -> None:
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _NoQueryStrings) for f in logger.filters):
        logger.addFilter(_NoQueryStrings())


def hosts_for(host: str) -> tuple[str, ...]:
    """The Host headers to accept when listening on `host`: any on every interface (the
    user chose to be reachable by other names), else that address and the loopback names."""
    if host in ("0.0.0.0", "::", ""):
        return ("*",)
    return (host, *LOCAL_HOSTS) if host not in LOCAL_HOSTS else LOCAL_HOSTS


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (0: any free port), or UserError saying why not."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        return socket.create_server(info[4][:2], family=info[0], backlog=128)
    except socket.gaierror as exc:
        raise UserError(f"cannot listen on {host}:{port}: unknown host ({exc.strerror})") from None
    except OSError as exc:  # create_server's message repeats the address: say it once
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise UserError(f"cannot listen on {host}:{port}: {reason}") from None


def url(sock: socket.socket) -> str:
    """The base URL of a socket from `bind`."""
    address, port = sock.getsockname()[:2]
    return f"http://{f'[{address}]' if ':' in address else address}:{port}"


def _server(app: FastAPI, **options: Any) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, **options))


def serve(app: FastAPI, sock: socket.socket) -> None:
    """Serve until Ctrl+C (or SIGTERM), with uvicorn's console log."""
    try:
        _server(app, log_level="info").run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl+C it shut down for
        pass
    finally:
        sock.close()


@contextmanager
def running(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `app` in a background thread; yields its base URL, stops on leaving.

    Logging is left as the caller set it up (uvicorn's records propagate to the root).
    """
    sock = bind(host, port)
    server = _server(app, log_config=None, timeout_graceful_shutdown=5)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server stopped while starting; see the log")
            time.sleep(0.01)
        yield url(sock)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
