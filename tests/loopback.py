"""Small loopback servers for producer tests: a TLS front for Valkey and a silent black hole."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@contextmanager
def tls_proxy(context: ssl.SSLContext, target_port: int) -> Iterator[int]:
    """Accept TLS on a free loopback port and forward the plaintext to ``target_port``.

    Every socket it opens is closed on exit (left to the garbage collector, an unclosed socket
    becomes a ResourceWarning in whichever later test happens to collect it)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    opened: list[socket.socket] = []
    pipes: list[threading.Thread] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            try:
                tls = context.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError):
                raw.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", target_port))
            opened.extend((tls, upstream))
            for src, dst in ((tls, upstream), (upstream, tls)):
                pipe = threading.Thread(target=_pipe, args=(src, dst), daemon=True)
                pipes.append(pipe)
                pipe.start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        with suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(5)
        for sock in opened:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for pipe in pipes:
            pipe.join(5)
        for sock in opened:
            sock.close()


@contextmanager
def black_hole() -> Iterator[int]:
    """A loopback port that accepts connections and never answers (a hung Redis)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(5)
        for conn in held:
            conn.close()
