"""The timing code itself: statistics on known samples, a fake clock, and a module that sleeps."""

import time

import pytest
from torch import nn

from spmkit.profile.timing import quantile, summarize, time_interleaved


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_summary_statistics_of_known_samples():
    s = summarize([i / 1000 for i in range(10, 0, -1)])  # 10 ms .. 1 ms, unsorted
    assert s.median_ms == pytest.approx(5.5)
    assert s.p90_ms == pytest.approx(9.1)  # numpy's linear interpolation
    assert s.min_ms == pytest.approx(1.0) and s.mean_ms == pytest.approx(5.5)
    assert quantile([1.0, 3.0], 0.5) == 2.0


def test_warmup_excluded_and_order_rotates_with_fake_clock():
    clock, calls = FakeClock(), []

    def make(name, durations):
        it = iter(durations)

        def fn():
            calls.append(name)
            clock.now += next(it)
        return fn

    # first two calls (warm-up) are slow; the timed ones take 1..5 ms and 10..50 ms
    a = make("a", [9.0, 9.0] + [i / 1000 for i in (1, 2, 3, 4, 5)])
    b = make("b", [9.0, 9.0] + [i / 100 for i in (1, 2, 3, 4, 5)])
    sa, sb = time_interleaved([a, b], warmup=2, repeats=5, clock=clock)
    assert sa.samples_ms == pytest.approx((1, 2, 3, 4, 5)) and sa.median_ms == pytest.approx(3)
    assert sb.median_ms == pytest.approx(30) and sb.p90_ms == pytest.approx(46)
    timed = calls[4:]
    assert [timed[i:i + 2] for i in range(0, 10, 2)] == [["a", "b"], ["b", "a"]] * 2 + [["a", "b"]]


def test_max_seconds_stops_after_min_repeats_with_equal_counts():
    clock = FakeClock()

    def fn():
        clock.now += 1.0

    stats = time_interleaved([fn, fn], warmup=0, repeats=50, clock=clock, max_seconds=3.0, min_repeats=4)
    assert [s.count for s in stats] == [4, 4]  # 3 s were spent after 2 rounds, but 4 rounds are the minimum
    stats = time_interleaved([fn], warmup=0, repeats=50, clock=clock, max_seconds=6.5, min_repeats=2)
    assert stats[0].count == 7


class Sleep(nn.Module):
    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def forward(self, x):
        time.sleep(self.seconds)
        return x


def test_sleeping_module_is_never_timed_shorter_than_its_sleep():
    short, long = Sleep(0.005), Sleep(0.02)
    s_short, s_long = time_interleaved([lambda: short(1), lambda: long(1)], warmup=1, repeats=5)
    assert s_short.count == s_long.count == 5
    assert min(s_long.samples_ms) >= 20.0 and min(s_short.samples_ms) >= 5.0
    assert s_long.p90_ms >= s_long.median_ms >= 20.0
