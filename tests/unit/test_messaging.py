"""The shared NATS helpers' guarantees that do not need a server."""

import pytest
from nats.js.errors import NoStreamResponseError

from modelhub_runtime.messaging import retry_delay, through_elections


def test_retry_delays_grow_and_stay_bounded():
    assert [retry_delay(n) for n in (1, 2, 3, 4, 5, 50)] == [2.0, 5.0, 15.0, 30.0, 30.0, 30.0]


async def test_a_publish_is_sent_again_while_the_stream_has_no_leader():
    """An election on a JetStream cluster: no responders (503), then a lost ack, then stored."""
    errors = [NoStreamResponseError(), TimeoutError()]
    timeouts: list[float] = []

    async def attempt(timeout: float) -> str:
        timeouts.append(timeout)
        if errors:
            raise errors.pop(0)
        return "stored"

    assert await through_elections(attempt, "evt", budget=5.0, attempt_timeout=2.0) == "stored"
    assert len(timeouts) == 3 and all(0 < t <= 2.0 for t in timeouts)


async def test_a_stream_without_a_leader_past_the_budget_fails_and_other_errors_at_once():
    calls = 0

    async def leaderless(timeout: float) -> str:
        nonlocal calls
        calls += 1
        raise NoStreamResponseError()

    with pytest.raises(NoStreamResponseError):
        await through_elections(leaderless, "evt", budget=0.5)
    assert calls > 1

    async def refused(timeout: float) -> str:
        raise ValueError("not a leader problem")

    with pytest.raises(ValueError):
        await through_elections(refused, "evt", budget=5.0)
