"""Side-by-side benchmark of every clustering model against the toolkits' baselines (issue 12; docs/benchmark.md).

    python tools/benchmark.py run --mode short                        # seconds: the tool and its outputs work
    python tools/benchmark.py run --skip-accuracy --out docs/benchmark  # cost-only pass of the full protocol
    python tools/benchmark.py run                                     # everything (hours: see docs/benchmark.md)
    python tools/benchmark.py report docs/benchmark --update-readmes  # tables, plots and README tables again

The logic lives in :mod:`mmcluster.benchmark` (cli, measure, operators, accuracy, published, report, plots).
The process restarts itself once with one OpenMP thread and a fixed glibc mmap threshold, so that freed memory
is returned at once and the peak-RSS measurements belong to the call measured.
"""
import os
import sys

ENV = dict(MALLOC_MMAP_THRESHOLD_='131072', OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')

if __name__ == '__main__':
    if any(os.environ.get(k) is None for k in ENV) and 'report' not in sys.argv[1:2]:
        os.execve(sys.executable, [sys.executable, *sys.argv], {**ENV, **os.environ})
    from mmcluster.benchmark.cli import main
    main()
