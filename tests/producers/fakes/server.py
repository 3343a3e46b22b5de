"""A scripted HTTP/1.1 server on 127.0.0.1: each request gets the next queued reply.

Replies are JSON bodies (with Content-Length) or streamed bodies written chunk by chunk with
chunked transfer encoding and flushed, so clients see SSE, NDJSON or AWS event-stream frames
arrive one at a time. Every request is kept for assertions.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted HTTP response."""

    status: int = 200
    body: bytes = b""
    chunks: list[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    # A streamed body cut short: the connection closes without the final chunk.
    cut: bool = False

    @classmethod
    def json(cls, payload: Any, status: int = 200, **headers: str) -> Reply:
        """A JSON response; header names use ``_`` for ``-``."""
        return cls(status, json.dumps(payload).encode(), None, _headers(headers))

    @classmethod
    def stream(cls, chunks: list[bytes], content_type: str, **headers: str) -> Reply:
        """A streamed response, one flushed chunk per item."""
        return cls(200, b"", chunks, _headers(headers), content_type)


def cut_short(reply: Reply, keep: int = 1) -> Reply:
    """``reply`` (a streamed one) sending only its first ``keep`` chunks, then dropping the
    connection mid-body: the stream fails after it started."""
    assert reply.chunks is not None, "only a streamed reply can be cut short"
    return dataclasses.replace(reply, chunks=reply.chunks[:keep], cut=True)


def _headers(headers: dict[str, str]) -> dict[str, str]:
    return {name.replace("_", "-"): value for name, value in headers.items()}


@dataclass
class Seen:
    """A request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FakeServer:
    """Answers requests with queued replies (a 500 when the queue is empty)."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Seen] = []
        self._http = _Server(("127.0.0.1", 0), _handler(self))
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.01,), daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def queue(self, *replies: Reply) -> None:
        """Queue replies, answered in order."""
        self.replies.extend(replies)

    def next_reply(self) -> Reply:
        """Pop the next reply, or a 500 when nothing is queued."""
        if self.replies:
            return self.replies.popleft()
        return Reply.json({"error": {"message": "no reply queued"}}, status=500)

    def start(self) -> FakeServer:
        """Start serving in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._http.shutdown()
        self._http.server_close()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client closing a stream early (as SDKs do after ``[DONE]``) is not an error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def fake_server() -> Iterator[FakeServer]:
    """A started :class:`FakeServer`, stopped on exit."""
    server = FakeServer().start()
    try:
        yield server
    finally:
        server.stop()


def _handler(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as separate writes

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            server.requests.append(Seen(self.command, self.path, headers, body))
            self._write(server.next_reply())

        do_GET = do_POST = _serve

        def _write(self, reply: Reply) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if reply.chunks is None:
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in reply.chunks:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            if reply.cut:
                self.close_connection = True
                return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    return Handler
