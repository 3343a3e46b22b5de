"""The worker processes: the shared consumer-group runtime and one module per worker kind."""
