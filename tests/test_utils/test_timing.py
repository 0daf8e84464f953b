"""mmcluster.utils.timing.interleaved_ms: call order (warm-up, interleaving, per-round re-warming), medians, errors."""
import pytest

from mmcluster.utils import timing


def recording_fns(log, fake_time, durations):
    """Functions that log their name and advance the fake clock by their own duration per call."""
    def make(name):
        def fn():
            log.append(name)
            fake_time[0] += durations[name].pop(0) if isinstance(durations[name], list) else durations[name]
        return fn
    return {name: make(name) for name in durations}


@pytest.fixture
def fake_clock(monkeypatch):
    now = [0.0]
    monkeypatch.setitem(timing.CLOCKS, 'wall', lambda: now[0])
    return now


def test_rounds_interleave_and_reverse(fake_clock):
    log = []
    fns = recording_fns(log, fake_clock, dict(a=0.001, b=0.002))
    ms = timing.interleaved_ms(fns, rounds=3, warmup=1)
    assert log == ['a', 'b', 'a', 'b', 'b', 'a', 'a', 'b']
    assert ms == pytest.approx(dict(a=1.0, b=2.0))


def test_rewarm_calls_run_right_before_each_timed_call_and_are_not_timed(fake_clock):
    log = []
    # each function's first call of a round is slow (cold), the second fast: only the second may be timed
    fns = recording_fns(log, fake_clock, dict(a=[0.5, 9.0, 0.001, 9.0, 0.001], b=[0.5, 9.0, 0.003, 9.0, 0.003]))
    ms = timing.interleaved_ms(fns, rounds=2, warmup=1, rewarm=1)
    assert log == ['a', 'b'] + ['a', 'a', 'b', 'b'] + ['b', 'b', 'a', 'a']
    assert ms == pytest.approx(dict(a=1.0, b=3.0))


def test_median_over_rounds(fake_clock):
    log = []
    fns = recording_fns(log, fake_clock, dict(a=[0.0, 0.004, 0.001, 0.100]))
    assert timing.interleaved_ms(fns, rounds=3, warmup=1)['a'] == pytest.approx(4.0)


@pytest.mark.parametrize('kwargs, message', [
    (dict(rounds=0), 'rounds must be >= 1'),
    (dict(rewarm=-1), 'rewarm must be >= 0'),
    (dict(clock='gpu'), "unknown clock 'gpu'; valid: \\['cpu', 'wall'\\]"),
])
def test_bad_arguments_name_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        timing.interleaved_ms(dict(a=lambda: None), **kwargs)
