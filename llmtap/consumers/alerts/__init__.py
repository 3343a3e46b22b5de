"""The alerts worker: rule evaluation on calls and windows, alert state and the notify outbox."""
