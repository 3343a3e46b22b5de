"""The one backoff function: exponential from ``base_s``, capped at ``cap_s``, less jitter."""

from __future__ import annotations

import pytest

from llmtap.retry import RetryPolicy, backoff


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(0, 1.0), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (6, 32.0), (7, 60.0), (50, 60.0)],
)
def test_without_jitter_the_wait_doubles_from_base_up_to_the_cap(
    attempt: int, expected: float
) -> None:
    """With jitter 0 the wait is base * 2**(attempt-1), never below base nor above the cap."""
    policy = RetryPolicy(attempts=0, base_s=1.0, cap_s=60.0, jitter=0.0)
    assert backoff(attempt, policy, 0.7) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("jitter", "rand", "expected"),
    [
        (0.2, 0.0, 8.0),
        (0.2, 0.5, 7.2),
        (0.2, 0.999, 6.4016),
        (1.0, 0.0, 8.0),
        (1.0, 0.25, 6.0),
        (1.0, 0.75, 2.0),
    ],
)
def test_jitter_takes_up_to_its_share_off_the_wait(
    jitter: float, rand: float, expected: float
) -> None:
    """``rand`` in [0, 1) takes ``jitter * rand`` of the wait off (1.0: full jitter)."""
    policy = RetryPolicy(base_s=1.0, cap_s=60.0, jitter=jitter)
    assert backoff(4, policy, rand) == pytest.approx(expected)


@pytest.mark.parametrize("rand", [0.0, 0.3, 0.999999])
@pytest.mark.parametrize("attempt", [1, 5, 30])
def test_full_jitter_waits_stay_in_zero_to_the_capped_delay(attempt: int, rand: float) -> None:
    """The publisher's full jitter waits more than 0 and at most min(cap, base * 2**(n-1))."""
    policy = RetryPolicy(attempts=0, base_s=0.1, cap_s=5.0, jitter=1.0)
    wait = backoff(attempt, policy, rand)
    assert 0.0 < wait <= min(5.0, 0.1 * 2 ** (attempt - 1))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": -1},
        {"base_s": -0.1},
        {"base_s": 2.0, "cap_s": 1.0},
        {"jitter": -0.01},
        {"jitter": 1.01},
    ],
)
def test_a_policy_that_cannot_work_is_refused(kwargs: dict[str, float]) -> None:
    """Negative attempts or base, a cap below the base, or jitter outside [0, 1] raise."""
    with pytest.raises(ValueError, match="bad retry policy"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
