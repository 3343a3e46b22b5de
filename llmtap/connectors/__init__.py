"""Connectors to other monitoring systems: Prometheus ``/metrics`` (read side) and the OTLP
export worker (a consumer group). Each needs its extra: ``metrics`` or ``otel``."""
