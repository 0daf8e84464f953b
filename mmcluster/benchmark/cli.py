"""Command line of ``tools/benchmark.py``: ``run`` measures into a results folder, ``report`` rewrites its tables.

    python tools/benchmark.py run [--mode full|short] [--out DIR] [--parts costs operators accuracy published]
                                  [--skip-accuracy] [--device cpu|cuda] [--tasks ...] [--reuse DIR] ...
    python tools/benchmark.py report DIR [--update-readmes]

``run`` writes ``DIR/results.json`` (every measurement, raw) and then the report (CSV, ``tables.md``, plots; see
:mod:`mmcluster.benchmark.report`). ``--reuse DIR`` copies the parts that are not measured now from an earlier
results folder (e.g. the slow full-size FLOP counts of ``published``, or accuracy runs). Default output folder:
``benchmark_results/<mode>-<timestamp>/`` (ignored by git); the committed reference run is ``docs/benchmark/``.
"""
import argparse
import datetime
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmcluster.utils.toy_run import REPO

PARTS = ('costs', 'operators', 'accuracy', 'published')
#: per mode: measurement settings (the short mode takes seconds and runs in the test suite)
MODES: Dict[str, Dict[str, Any]] = {
    'full': dict(rounds=5, repeats=2, warmup=1, batch=4, train_batch=None, op_rounds=3,
                 op_sizes=['128x128', '256x256', '512x512', '800x1333'], max_op_seconds=30.0, max_op_mib=8192.0),
    'short': dict(rounds=2, repeats=1, warmup=1, batch=2, train_batch=None, op_rounds=1, op_sizes=['32x32', '64x64'],
                  max_op_seconds=5.0, max_op_mib=1024.0),
}
DEFAULT_PARTS = {'full': PARTS, 'short': ('costs', 'operators', 'accuracy')}


def _size(text: str) -> Tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'a size is HxW, e.g. 800x1333, got {text!r}')
    return h, w


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='tools/benchmark.py', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    run = sub.add_parser('run', help='measure into a results folder')
    run.add_argument('--mode', choices=sorted(MODES), default='full', help='protocol mode and measurement sizes')
    run.add_argument('--out', type=Path, help='results folder (default benchmark_results/<mode>-<timestamp>)')
    run.add_argument('--parts', nargs='+', choices=PARTS, help='what to measure (default: all in full mode; '
                     'costs, operators, accuracy in short mode)')
    run.add_argument('--skip-accuracy', action='store_true', help='no training runs (cost-only pass)')
    run.add_argument('--tasks', nargs='+', help='only these tasks of the protocol')
    run.add_argument('--models', nargs='+', help='only these models (display names) of the protocol')
    run.add_argument('--device', choices=['cpu', 'cuda'], default='cpu',
                     help='cuda: also fp16 / bf16 autocast rows (needs a GPU)')
    run.add_argument('--threads', type=int, default=1, help='torch threads (default 1: comparable on a shared CPU)')
    run.add_argument('--clock', choices=['cpu', 'wall'],
                     help='time by CPU time of the measuring thread (default with one CPU thread: a shared '
                     'machine\'s load does not stretch it) or by wall time (default otherwise; the only one on a GPU)')
    run.add_argument('--reuse', type=Path, nargs='+',
                     help='results folders whose parts not measured now are copied (the first that has a part)')
    run.add_argument('--published-cache-only', action='store_true',
                     help='published part: only the full-size counts already in <out>/published_cache.json; the '
                     'others are listed as not measured (the counts take minutes per detector on a CPU)')
    run.add_argument('--max-count-mib', type=float, default=8192.0,
                     help='published part: stop a full-size FLOP count whose process exceeds this resident memory '
                     '(default 8192; the row then says so)')
    run.add_argument('--accuracy-from', type=Path,
                     help='read the accuracy part from the protocol\'s per-run records (e.g. docs/benchmark/protocol, '
                     'written by python -m mmcluster.benchmark.protocol) instead of training')
    run.add_argument('--data', type=Path, help='protocol data root (default: the protocol\'s)')
    for key in ('rounds', 'repeats', 'warmup', 'batch', 'train_batch', 'op_rounds'):
        run.add_argument(f'--{key.replace("_", "-")}', type=int, help=f'default: the mode\'s ({MODES["full"][key]} '
                         'in full mode; train-batch None = the protocol\'s batch size of the task)')
    run.add_argument('--op-sizes', nargs='+', type=_size, help='image sizes HxW of the operator scaling')
    run.add_argument('--max-op-seconds', type=float, help='skip an operator form predicted slower per call')
    run.add_argument('--max-op-mib', type=float, help='skip an operator form predicted to need more memory')
    report = sub.add_parser('report', help='rewrite the tables and plots of a results folder')
    report.add_argument('folder', type=Path)
    report.add_argument('--update-readmes', action='store_true',
                        help='regenerate README.md and configs/*/README.md between the benchmark markers')
    args = parser.parse_args(argv)
    if args.command == 'run':
        settings = dict(MODES[args.mode])
        for key, value in settings.items():
            if getattr(args, key, None) is None and value is not None:
                setattr(args, key, [_size(s) for s in value] if key == 'op_sizes' else value)
        parts = list(args.parts or DEFAULT_PARTS[args.mode])
        if (args.skip_accuracy or args.accuracy_from) and 'accuracy' in parts:
            parts.remove('accuracy')
        args.parts = parts
        if args.threads < 1:
            parser.error('--threads must be >= 1')
        from .measure import resolve_clock
        try:
            args.clock = resolve_clock(args.clock, args.device, args.threads)
        except ValueError as e:
            parser.error(str(e))
    return args


def short_selection(runs: List[Any]) -> List[Any]:
    """The short mode's models: per task the baseline and the first clustering model."""
    chosen, seen = [], set()
    for run in runs:
        kind = (run.task, run.is_baseline)
        if kind not in seen:
            seen.add(kind)
            chosen.append(run)
    return chosen


def select_runs(runs: List[Any], tasks: Optional[Sequence[str]], models: Optional[Sequence[str]]) -> List[Any]:
    """The protocol runs of ``tasks`` / ``models``; an unknown name is an error that lists the valid ones."""
    for wanted, have, what in ((tasks, [r.task for r in runs], 'tasks'), (models, [r.model for r in runs], 'models')):
        unknown = sorted(set(wanted or ()) - set(have))
        if unknown:
            raise SystemExit(f'error: unknown {what} {unknown}; the protocol has {sorted(set(have))}')
    return [r for r in runs if (not tasks or r.task in tasks) and (not models or r.model in models)]


#: the settings in ``meta`` that describe how a part was measured (copied with the part by ``--reuse``)
PART_META = {'costs': ('rounds', 'repeats', 'warmup', 'batch', 'train_batch', 'threads', 'device', 'machine', 'torch',
                       'clock'),
             'operators': ('op_rounds', 'op_clock'), 'accuracy': ('accuracy_status', ), 'published': ()}


def reuse_parts(results: Dict[str, Any], folder: Path, measured: Sequence[str]) -> None:
    """Copy into ``results`` the parts of an earlier results folder that are not measured now, with the settings
    they were measured with and the command that measured them (``meta['<part>_from']``).

    Several folders merge: rows of ``costs`` / ``accuracy`` whose (task, model) is not in ``results`` yet are
    appended (e.g. one cost run per task: the ratios are within a task, so each task's models and baseline must
    come from the same run, which this keeps); ``operators`` / ``published`` come from the first folder that has
    them.
    """
    from .report import load_results
    earlier = load_results(folder)
    meta = earlier['meta']
    for part in PARTS:
        if part in measured or not earlier[part]:
            continue
        if part in ('costs', 'accuracy'):
            have = {(r['task'], r['model']) for r in results[part]}
            new = [r for r in earlier[part] if (r['task'], r['model']) not in have]
        else:
            new = [] if results[part] else earlier[part]
        if not new:
            continue
        results[part] = results[part] + new
        # a part the earlier folder itself reused keeps its original provenance
        source = meta.get(f'{part}_from') or f'{meta.get("command", folder)} ({meta.get("date", "?")})'
        previous = results['meta'].get(f'{part}_from')
        results['meta'][f'{part}_from'] = source if previous is None else f'{previous}; {source}'
        for key in PART_META[part]:
            if key in meta:
                results['meta'][key] = meta[key]


def accuracy_command(mode: str) -> str:
    return f'python tools/benchmark.py run --mode {mode} --parts accuracy --reuse <this folder>'


def run(args: argparse.Namespace) -> Path:
    """Measure the chosen parts, write ``results.json`` and the report; returns the results folder."""
    import torch

    from . import protocol
    from .measure import check_device, machine_description, measure_costs, threads
    check_device(args.device)  # fail before anything is built
    stamp = datetime.datetime.utcnow().strftime('%Y%m%d-%H%M%S')
    out = Path(args.out or REPO / 'benchmark_results' / f'{args.mode}-{stamp}')
    out.mkdir(parents=True, exist_ok=True)
    runs = protocol.protocol_runs(args.mode)
    if args.mode == 'short' and not args.models:
        runs = short_selection(runs)
    runs = select_runs(runs, args.tasks, args.models)
    logging.getLogger('mmengine').setLevel(logging.WARNING)  # no per-parameter optimizer lines per model
    argv = ' '.join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith('benchmark.py') else f'run --mode {args.mode}'
    results: Dict[str, Any] = dict(meta=dict(
        command=f'python tools/benchmark.py {argv}', mode=args.mode, parts=args.parts,
        date=datetime.datetime.utcnow().strftime('%Y-%m-%d %H:%M UTC'), machine=machine_description(),
        device=args.device,
        threads=args.threads, clock=args.clock, op_clock=args.clock, torch=torch.__version__, rounds=args.rounds, repeats=args.repeats,
        warmup=args.warmup, batch=args.batch, train_batch=args.train_batch, op_rounds=args.op_rounds,
        note='CPU time is not stretched by the load of a shared machine (shared caches and memory bandwidth still '
             'add noise); wall-clock time on a loaded machine is. The ratios, measured in the same interleaved '
             'rounds, are the robust result.'),
        costs=[], operators=[], accuracy=[], published=[])
    for folder in args.reuse or ():
        reuse_parts(results, folder, args.parts)
    timings: Dict[str, float] = {}

    def timed_part(name, fn):
        print(f'== {name}', flush=True)
        start = time.perf_counter()
        value = fn()
        timings[name] = time.perf_counter() - start
        print(f'   {name}: {timings[name]:.0f} s', flush=True)
        return value

    data = args.data
    if ('costs' in args.parts or 'accuracy' in args.parts) and data is None:
        data = timed_part('data', lambda: protocol.prepare_data(args.mode))
    with threads(args.threads):
        if 'costs' in args.parts:
            results['costs'] = timed_part('costs', lambda: measure_costs(
                runs, mode=args.mode, device=args.device, rounds=args.rounds, repeats=args.repeats, warmup=args.warmup,
                batch=args.batch, train_batch=args.train_batch, data=data, clock=args.clock))
        if 'operators' in args.parts:
            from .operators import measure_operators
            results['operators'] = timed_part('operators', lambda: measure_operators(
                args.op_sizes, device=args.device, rounds=args.op_rounds, max_seconds=args.max_op_seconds,
                max_mib=args.max_op_mib, clock=args.clock))
    if args.accuracy_from is not None:
        from .accuracy import read_protocol_records
        results['accuracy'] = read_protocol_records(args.accuracy_from, runs)
        results['meta'].pop('accuracy_from', None)  # replaced, not reused: the status below says where from
        results['meta']['accuracy_status'] = (f'read from the protocol records in {args.accuracy_from} '
                                              f'({len(results["accuracy"])} of {len(runs)} models; '
                                              'docs/benchmark_protocol.md)')
    elif 'accuracy' in args.parts:
        from .accuracy import measure_accuracy
        results['accuracy'] = timed_part('accuracy', lambda: measure_accuracy(
            runs, mode=args.mode, work_dir=REPO / 'work_dirs' / 'benchmark' / out.name, data=data))
        results['meta']['accuracy_status'] = (f'{protocol.budget_minutes(args.mode):g} min of training time per model '
                                              f'({args.mode} protocol, docs/benchmark_protocol.md)')
    elif not results['accuracy']:
        results['meta']['accuracy_status'] = f'not run (`{accuracy_command(args.mode)}`)'
    if 'published' in args.parts:
        from .published import FULL_SIZE, measure_full_size
        def not_measured(config, shape):
            return dict(error='not measured in this pass (python tools/benchmark.py run --parts published '
                        f'--out {out} resumes the count)')

        from functools import partial

        from .flops import count_in_subprocess
        counter = not_measured if args.published_cache_only else partial(count_in_subprocess,
                                                                          max_mib=args.max_count_mib)
        results['published'] = timed_part('published', lambda: measure_full_size(
            FULL_SIZE, counter, cache=out / 'published_cache.json'))
    results['meta']['seconds'] = timings
    (out / 'results.json').write_text(json.dumps(results, indent=1))
    from .report import write_report
    written = write_report(out)
    print(f'results: {out}: ' + ', '.join(sorted(written)))
    return out


def main(argv: Optional[Sequence[str]] = None) -> Optional[Path]:
    args = parse_args(argv)
    if args.command == 'report':
        from .report import update_readmes, write_report
        written = write_report(args.folder)
        print(f'{args.folder}: ' + ', '.join(sorted(written)))
        if args.update_readmes:
            update_readmes(args.folder)
        return args.folder
    return run(args)
