"""The one reader of the workers' aggregates: ``query`` merges buckets, one module per topic
(status, cost, performance, dashboard, insights, sessions, alerts, report, admin) builds on it,
and ``tools`` holds the nine tool functions and the cached ``ProfilingTools``."""
