"""Stdlib HTTP front end of the emulator (one daemon thread)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from ._engine import Engine, Reply
from ._viewer import VIEWER_PATH, viewer_reply

__all__ = ["EmulatorServer"]

_API_PREFIX = "/api/"
_UPLOAD_PREFIX = "/upload/v1/"
_WEBHOOK_PREFIX = "/services/"


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "SlackEmulator/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, reply: Reply | None) -> None:
        if reply is None:
            # Close the socket without writing a single byte.
            self.close_connection = True
            return
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. timed out on a delayed answer).
            self.close_connection = True

    def _dispatch(self) -> None:
        body = self._read_body()
        url = urlsplit(self.path)
        engine = self.server.engine
        if url.path.startswith(_API_PREFIX):
            method = url.path[len(_API_PREFIX) :]
            headers = {k: v for k, v in self.headers.items()}
            self._send(engine.handle_api(method, headers, url.query, body))
        elif url.path.startswith(_UPLOAD_PREFIX) and self.command == "POST":
            self._send(engine.handle_upload(url.path[len(_UPLOAD_PREFIX) :], body))
        elif url.path.startswith(_WEBHOOK_PREFIX) and self.command == "POST":
            headers = {k: v for k, v in self.headers.items()}
            path = url.path[len(_WEBHOOK_PREFIX) :]
            self._send(engine.handle_webhook(path, headers, body))
        elif self.command == "GET" and (
            url.path == VIEWER_PATH or url.path.startswith(VIEWER_PATH + "/")
        ):
            # The thread viewer (HTML for people, not part of Slack's API).
            self._send(viewer_reply(engine.workspace, url.path, url.query))
        else:
            self._send(Reply(404, b"Not Found", "text/plain; charset=utf-8"))

    def do_POST(self) -> None:
        """Handle API calls, raw uploads and webhook posts."""
        self._dispatch()

    def do_GET(self) -> None:
        """Slack also accepts GET with query parameters for most methods."""
        self._dispatch()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, engine: Engine, port: int) -> None:
        self.engine = engine
        super().__init__(("127.0.0.1", port), _Handler)


class EmulatorServer:
    """A started/stopped HTTP server bound to an ephemeral localhost port.

    Example:
        >>> # server = EmulatorServer(engine); server.start(); server.port
    """

    def __init__(self, engine: Engine, port: int = 0) -> None:
        """Prepare (but do not bind) a server for ``engine`` (port 0: any free one)."""
        self._engine = engine
        self._port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the server is bound and serving."""
        return self._httpd is not None

    @property
    def port(self) -> int:
        """The bound TCP port (only while running)."""
        if self._httpd is None:
            raise RuntimeError("the Slack emulator is not running; call start()")
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        """Bind 127.0.0.1:<port> (0: a free one) and serve in a daemon thread."""
        if self._httpd is not None:
            return
        httpd = _HTTPServer(self._engine, self._port)
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"slack-emulator-{httpd.server_address[1]}",
            daemon=True,
        )
        thread.start()
        self._httpd, self._thread = httpd, thread

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5.0)
