"""The one retry policy: attempts, exponential backoff with a cap, and jitter.

The publisher (Redis down), the consumer runtime (Redis unreachable at start or mid-run) and
the notifier (a receiver failing) all wait :func:`backoff` between attempts; only their
:class:`RetryPolicy` values differ.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a caller retries: ``attempts`` in all (0: forever), backoff ``base_s`` doubling up
    to ``cap_s``, and the ``jitter`` share of each wait drawn at random (1.0: full jitter)."""

    attempts: int = 8
    base_s: float = 0.5
    cap_s: float = 300.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.attempts < 0 or self.base_s < 0 or self.cap_s < self.base_s:
            raise ValueError(f"bad retry policy {self!r}: need attempts >= 0, 0 <= base <= cap")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"bad retry policy {self!r}: jitter must be in [0, 1]")


def backoff(attempt: int, policy: RetryPolicy, rand: float) -> float:
    """Return the wait (s) before retry ``attempt`` (1-based): ``base * 2**(attempt-1)``,
    capped at ``cap_s``, less a random share: ``rand`` in [0, 1) takes up to ``jitter`` of it
    off, so callers that failed together do not all come back at once."""
    delay = min(policy.cap_s, policy.base_s * 2.0 ** max(attempt - 1, 0))
    return delay * (1.0 - policy.jitter * rand)
