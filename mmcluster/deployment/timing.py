"""Latency by interleaved rounds: every candidate runs once per round (order reversed every other round), so a
slow phase of a shared machine falls on all of them alike; the median over rounds is reported."""
import statistics
import time
from typing import Callable, Dict, List


def interleaved_ms(fns: Dict[str, Callable[[], object]], rounds: int = 5, warmup: int = 1) -> Dict[str, float]:
    """Median milliseconds of each function over ``rounds`` interleaved rounds, after ``warmup`` calls each.

    Args:
        fns: name -> function of no argument.
        rounds: measured rounds (one call of each function per round).
        warmup: unmeasured calls of each function first.

    Returns:
        name -> median milliseconds.
    """
    if rounds < 1:
        raise ValueError(f'rounds must be >= 1, got {rounds}')
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    times: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(v) for name, v in times.items()}
