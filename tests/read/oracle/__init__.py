"""The read side as it was before the fast path (commit 38e997c), kept as the tests' oracle:
the fast path must give the same answers on the same seeded data."""
