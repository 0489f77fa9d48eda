"""The token buckets of collab/limits.py, on a clock the test turns."""

from __future__ import annotations

import pytest

from collab.config import Settings
from collab.errors import ConfigError, RateLimited
from collab.limits import Buckets, Rate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_the_rate() -> None:
    clock = Clock()
    buckets = Buckets(Rate(2, 5), "messages per token", clock=clock)
    for _ in range(5):
        buckets.take("a")
    with pytest.raises(RateLimited) as refused:
        buckets.take("a")
    assert "messages per token over 2/s, 5 at once" in refused.value.message
    assert refused.value.details["retry_after"] == pytest.approx(0.5)
    buckets.take("b")  # another key has its own bucket
    clock.now += 0.5  # one token back
    buckets.take("a")
    with pytest.raises(RateLimited):
        buckets.take("a")
    clock.now += 60  # refills up to the burst, not beyond
    for _ in range(5):
        buckets.take("a")
    with pytest.raises(RateLimited):
        buckets.take("a")


def test_refusals_do_not_dig_deeper() -> None:
    """A client hammering an empty bucket gets in again after 1/rate, not later."""
    clock = Clock()
    buckets = Buckets(Rate(1, 1), "connections per IP", clock=clock)
    buckets.take("ip")
    for _ in range(1000):
        with pytest.raises(RateLimited):
            buckets.take("ip")
    clock.now += 1.0
    buckets.take("ip")


def test_unlimited_takes_nothing() -> None:
    buckets = Buckets(Rate(0, 0), "requests per IP")
    for _ in range(10_000):
        buckets.take("x")
    assert len(buckets) == 0


def test_the_table_is_bounded_and_busy_keys_outlive_idle_ones() -> None:
    clock = Clock()
    buckets = Buckets(Rate(1, 2), "messages per IP", max_keys=100, clock=clock)
    buckets.take("busy")
    buckets.take("busy")  # empty now
    clock.now += 0.1
    for k in range(1000):
        buckets.take(k)  # each new key leaves its bucket not full
        if k % 2:
            clock.now += 10.0  # ... and full again ten seconds later
    assert len(buckets) <= 100


def test_settings_parse_rates() -> None:
    s = Settings.from_env({"COLLAB_LIMIT_MESSAGES_TOKEN": "50:500", "COLLAB_LIMIT_CONNECT_IP": "0"})
    assert s.limits.messages_token == Rate(50, 500)
    assert s.limits.connect_ip.unlimited
    assert s.limits.requests_ip == Settings().limits.requests_ip
    for bad in ("fast", "10:x", "-1:5", "10:0.5"):
        with pytest.raises(ConfigError, match="COLLAB_LIMIT_REQUESTS_IP"):
            Settings.from_env({"COLLAB_LIMIT_REQUESTS_IP": bad})
