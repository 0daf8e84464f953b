"""Train toy configs for the same wall-clock budget and print their metrics beside their baselines'.

The machinery of ``tools/benchmark/train_*.py`` (one table per model family)::

    from mmcluster.utils.toy_benchmark import Entry, benchmark_cli
    benchmark_cli('HCFormer toy configs vs baselines', [
        Entry('configs/hcformer/x.py', ['mIoU', 'aAcc'], baseline='configs/baselines/y.py'), ...])

Every run goes through :func:`mmcluster.utils.toy_run.run_config` with ``minutes`` (``TimeBudgetHook``:
training stops after the budget, then the model is evaluated once on the toy val split). Not a test: on a
shared CPU these numbers say that training runs and roughly how far it gets, not which model is better.
"""
import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from .toy_run import REPO, ToyRun, ensure_toy_data, read_run, run_config

PathLike = Union[str, Path]
#: where ``tools/benchmark/train_baselines.py`` leaves its runs (``--baselines reuse`` reads them)
BASELINE_RUNS = REPO / 'work_dirs' / 'toy_baselines'


@dataclass
class Entry:
    """A config to train, the metrics to show, and the baseline config it is compared with (if any)."""
    config: PathLike
    keys: Sequence[str]
    baseline: Optional[PathLike] = None


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 'n/a'
    return f'{value:.3f}' if isinstance(value, (int, float)) else str(value)


def _line(label: str, run: Optional[ToyRun], keys: Sequence[str]) -> str:
    if run is None:
        return f'{label:<48} {"-":>6}  (no run)'
    shown = ', '.join(f'{k} {_fmt(run.metrics.get(k))}' for k in keys)
    return f'{label:<48} {run.iters:>6}  {shown}'


def benchmark(entries: Sequence[Entry], minutes: float, work_dir: PathLike, data: Optional[PathLike] = None,
              baselines: str = 'run', baseline_runs: PathLike = BASELINE_RUNS, **run_kwargs) -> Dict:
    """Train every entry (and its baseline) for ``minutes``; print a table; write ``summary.json``.

    Args:
        entries: what to train.
        minutes: training budget per run.
        work_dir: runs go to ``<work_dir>/<config stem>`` (baselines to ``<work_dir>/baselines/``).
        data: toy data root (generated if incomplete); default ``$MMCLUSTER_TOY_DATA`` / ``data/toy``.
        baselines: ``run`` (train them the same way), ``reuse`` (read the runs of an earlier
            ``tools/benchmark/train_baselines.py`` in ``baseline_runs``) or ``none``.
        **run_kwargs: passed to :func:`~mmcluster.utils.toy_run.run_config`.

    Returns:
        ``{'minutes', 'runs': {config name: ToyRun.as_dict()}, 'baselines': {...}}``.
    """
    if baselines not in ('run', 'reuse', 'none'):
        raise ValueError(f"baselines must be 'run', 'reuse' or 'none', got {baselines!r}")
    data = ensure_toy_data(data)
    work_dir = Path(work_dir)
    runs: Dict[str, ToyRun] = {}
    base_runs: Dict[str, ToyRun] = {}

    def train(config: Path, root: Path) -> ToyRun:
        print(f'== {config.name}: training {minutes} min ...', flush=True)
        run = run_config(config, root / config.stem, minutes=minutes, data=data, **run_kwargs)
        print(f'   {run.iters} iterations in {run.wall_s / 60:.1f} min (with start-up and evaluation)', flush=True)
        return run

    for entry in entries:
        config = Path(entry.config)
        runs[config.name] = train(config, work_dir)
        if entry.baseline is None or baselines == 'none':
            continue
        base = Path(entry.baseline)
        if base.name in base_runs:
            continue
        if baselines == 'run':
            base_runs[base.name] = train(base, work_dir / 'baselines')
        elif (Path(baseline_runs) / base.stem).is_dir():
            base_runs[base.name] = read_run(Path(baseline_runs) / base.stem)

    print(f'\n{"config (" + str(minutes) + " min each)":<48} {"iters":>6}  metrics')
    for entry in entries:
        name = Path(entry.config).name
        print(_line(name, runs[name], entry.keys))
        if entry.baseline is not None and baselines != 'none':
            base = Path(entry.baseline).name
            print(_line(f'  baseline {base}', base_runs.get(base), entry.keys))
    summary = dict(minutes=minutes, runs={k: v.as_dict() for k, v in runs.items()},
                   baselines={k: v.as_dict() for k, v in base_runs.items()})
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / 'summary.json').write_text(json.dumps(summary, indent=2))
    print(f'summary: {work_dir / "summary.json"}')
    return summary


def benchmark_cli(description: str, entries: Sequence[Entry], default_work_dir: str, default_minutes: float = 2.0,
                  argv: Optional[Sequence[str]] = None, baselines: bool = True) -> Dict:
    """The command line of a ``tools/benchmark/train_*.py`` script around :func:`benchmark`.

    ``[--minutes M] [--only NAME ...] [--baselines run|reuse|none] [--data DIR] [--work-dir DIR]``;
    ``--only`` selects entries by config file name.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('--minutes', type=float, default=default_minutes, help='training budget per config')
    names = [Path(e.config).name for e in entries]
    parser.add_argument('--only', nargs='*', choices=names, metavar='CONFIG_NAME',
                        help=f'config file names to run (default: all): {", ".join(names)}')
    if baselines:
        parser.add_argument('--baselines', choices=['run', 'reuse', 'none'], default='run',
                            help='train the baselines too (run), read earlier train_baselines.py runs '
                            '(reuse), or skip them')
    parser.add_argument('--data', type=Path, default=None, help='toy data root (default: $MMCLUSTER_TOY_DATA '
                        'or data/toy; generated if missing)')
    parser.add_argument('--work-dir', type=Path, default=REPO / 'work_dirs' / default_work_dir)
    args = parser.parse_args(argv)
    chosen: List[Entry] = [e for e in entries if not args.only or Path(e.config).name in args.only]
    return benchmark(chosen, args.minutes, args.work_dir, args.data,
                     baselines=getattr(args, 'baselines', 'none'))
