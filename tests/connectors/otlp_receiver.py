"""A real OTLP/HTTP receiver on loopback: decodes the protobuf bodies of ``/v1/metrics`` and
``/v1/traces`` with ``opentelemetry-proto`` and keeps them, with the request headers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


@dataclass
class Received:
    """Every request the receiver took, decoded."""

    metrics: list[ExportMetricsServiceRequest] = field(default_factory=list)
    traces: list[ExportTraceServiceRequest] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def points(self, name: str) -> Iterator[tuple[Any, Any]]:
        """Yield (metric, data point) of every received metric called ``name``."""
        with self.lock:
            requests = list(self.metrics)
        for request in requests:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        if metric.name == name:
                            data = getattr(metric, metric.WhichOneof("data"))
                            for point in data.data_points:
                                yield metric, point

    def spans(self) -> list[Any]:
        """Return every received span."""
        with self.lock:
            requests = list(self.traces)
        return [
            s
            for r in requests
            for rs in r.resource_spans
            for ss in rs.scope_spans
            for s in ss.spans
        ]


def attributes(point: Any) -> dict[str, Any]:
    """Return a data point's or span's attributes as a plain dict."""
    out: dict[str, Any] = {}
    for kv in point.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


class OtlpReceiver:
    """The receiver on ``127.0.0.1:port`` (0: a free port) until ``stop()``."""

    def __init__(self, port: int = 0) -> None:
        self.received = Received()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with received.lock:
                    received.headers.append({k.lower(): v for k, v in self.headers.items()})
                    if self.path == "/v1/metrics":
                        received.metrics.append(ExportMetricsServiceRequest.FromString(body))
                    elif self.path == "/v1/traces":
                        received.traces.append(ExportTraceServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> OtlpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)
