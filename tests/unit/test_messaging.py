"""The shared NATS helpers' guarantees that do not need a server."""

from modelhub_runtime.messaging import retry_delay


def test_retry_delays_grow_and_stay_bounded():
    assert [retry_delay(n) for n in (1, 2, 3, 4, 5, 50)] == [2.0, 5.0, 15.0, 30.0, 30.0, 30.0]
