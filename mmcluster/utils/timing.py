"""Latency by interleaved rounds: every candidate runs once per round (order reversed every other round), so a
slow phase of a shared machine falls on all of them alike; the median over rounds is reported. Shared by the
benchmark (``mmcluster/benchmark``), the deployment checks and ``tools/benchmark/clustering_ops.py``."""
import statistics
import time
from typing import Callable, Dict, List

#: ``cpu``: CPU time of the calling thread (with one torch thread all the work runs in it, and the other processes
#: of a shared machine do not stretch it); ``wall``: elapsed time
CLOCKS = {'cpu': time.thread_time, 'wall': time.perf_counter}


def interleaved_ms(fns: Dict[str, Callable[[], object]], rounds: int = 5, warmup: int = 1,
                   clock: str = 'wall', rewarm: int = 0) -> Dict[str, float]:
    """Median milliseconds of each function over ``rounds`` interleaved rounds, after ``warmup`` calls each.

    Args:
        fns: name -> function of no argument.
        rounds: measured rounds (one timed call of each function per round).
        warmup: unmeasured calls of each function first.
        clock: a key of :data:`CLOCKS`.
        rewarm: unmeasured calls of a function right before its timed call, in every round. With ``0`` each
            call is timed just after the other candidates ran, so it starts with their data in the caches
            (a model's weights and activations of tens of MB fit the last-level cache only while it runs
            alone); ``1`` times every candidate with its own working set cached, as a loop serving one model
            would, while the rounds still interleave the candidates.

    Returns:
        name -> median milliseconds.
    """
    if rounds < 1:
        raise ValueError(f'rounds must be >= 1, got {rounds}')
    if rewarm < 0:
        raise ValueError(f'rewarm must be >= 0, got {rewarm}')
    if clock not in CLOCKS:
        raise ValueError(f'unknown clock {clock!r}; valid: {sorted(CLOCKS)}')
    now = CLOCKS[clock]
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    times: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            for _ in range(rewarm):
                fns[name]()
            start = now()
            fns[name]()
            times[name].append(now() - start)
    return {name: 1e3 * statistics.median(v) for name, v in times.items()}
