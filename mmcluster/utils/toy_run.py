"""Run a config on the toy data for a time or iteration budget and read what it reached.

The one helper behind ``make demo``, the benchmark protocol (:mod:`mmcluster.benchmark.protocol`) and the
end-to-end tests::

    from mmcluster.utils.toy_run import ensure_toy_data, run_config, evaluate_checkpoint

    data = ensure_toy_data()                       # $MMCLUSTER_TOY_DATA or <checkout>/data/toy, made if needed
    run = run_config('configs/.../x.py', 'work_dirs/x', minutes=2)     # or iters=2; data=data by default
    run.metrics        # the last evaluation record, e.g. {'mIoU': 31.2, 'aAcc': 77.0, ..., 'step': 40}
    run.iters          # iterations trained
    run.curve          # the training records, e.g. [{'iter': 1, 'loss': 2.3, 'lr': ..., 'time': ...}, ...]
    metrics = evaluate_checkpoint('configs/.../x.py', run.checkpoint, 'work_dirs/x_test')

    # a learning curve: 10 minutes of TRAINING time (validation excluded), validated every 2 minutes of it,
    # learning rate warmed up over the first 3 % of the time and cosine-decayed to 1 % by the end of it
    run = run_config('configs/.../x.py', 'work_dirs/x', train_minutes=10, val_every_minutes=2,
                     time_lr=(0.03, 0.01))
    run.val_curve      # [{'iter': 812, 'train_s': 120.4, 'val_s': 9.8, 'mIoU': 12.0, ...}, ...]

A run is a subprocess (``tools/train.py``, or ``mim train`` with ``mim='mmdet'``), so that each run starts
from a clean interpreter (mmengine's registries, loggers and message hub are process-global) and a
crash or a time-out cannot take the caller down. Records are read from what mmengine writes into the work
dir: ``<timestamp>/vis_data/scalars.json`` (training and validation) and ``<timestamp>/<timestamp>.json``
(the metrics of a test run). With ``train_minutes`` the :class:`TrainClockHook` (registered by this module, imported
by the run through ``custom_imports``) also writes ``<work_dir>/train_clock.jsonl``: one line per validation with
the training seconds spent before it.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from mmengine.hooks import Hook

from mmcluster.registry import HOOKS, register_module

PathLike = Union[str, Path]
CfgOptions = Union[None, Sequence[str], Mapping[str, Any]]

#: the checkout this package is installed from (``pip install -e .``): tools/ and configs/ live here
REPO = Path(__file__).resolve().parents[2]
TOY_DATA_ENV = 'MMCLUSTER_TOY_DATA'
#: loaders without worker processes: on a 2-core machine workers only compete with the model
NO_WORKERS = tuple(f'{loader}.{k}' for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
                   for k in ('num_workers=0', 'persistent_workers=False'))


class ToyRunError(RuntimeError):
    """A run exited with an error; the message ends with the tail of its log."""


@dataclass
class ToyRun:
    """What a training run reached (see :func:`run_config`, :func:`read_run`).

    Attributes:
        work_dir: the run's work dir.
        metrics: the last evaluation record (``{}`` if the run never validated).
        iters: iterations trained (the last checkpoint's or the last logged iteration, whichever is larger).
        curve: the training records in order (``iter``, ``loss``, the loss terms, ``lr``, ``time``, ...).
        evaluations: every evaluation record in order (``metrics`` is the last one).
        checkpoint: the checkpoint of the last iteration (None if none was written).
        wall_s: wall time of the subprocess, start-up and evaluation included (0 for :func:`read_run`).
        log: the file that holds the run's stdout / stderr (None for :func:`read_run`).
        val_curve: with ``train_minutes``: one record per validation, ``iter`` (iterations trained),
            ``train_s`` (training seconds before it, validations excluded), ``val_s`` and the metrics.
    """
    work_dir: Path
    metrics: Dict[str, Any] = field(default_factory=dict)
    iters: int = 0
    curve: List[Dict[str, Any]] = field(default_factory=list)
    evaluations: List[Dict[str, Any]] = field(default_factory=list)
    checkpoint: Optional[Path] = None
    wall_s: float = 0.0
    log: Optional[Path] = None
    val_curve: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def s_per_iter(self) -> float:
        """Mean seconds per training iteration, without the first (warm-up) record; nan if unknown."""
        times = [r['time'] for r in self.curve[1:] if 'time' in r]
        return sum(times) / len(times) if times else float('nan')

    def as_dict(self) -> Dict[str, Any]:
        """JSON-friendly summary (no curve)."""
        return dict(work_dir=str(self.work_dir), iters=self.iters, s_per_iter=self.s_per_iter,
                    wall_s=self.wall_s, metrics=self.metrics, val_curve=self.val_curve,
                    checkpoint=None if self.checkpoint is None else str(self.checkpoint))


# --------------------------------------------------------------------------- toy data
def default_toy_data() -> Path:
    """``$MMCLUSTER_TOY_DATA`` if set, else ``<checkout>/data/toy`` (where the configs look by default)."""
    env = os.environ.get(TOY_DATA_ENV)
    return Path(env).resolve() if env else REPO / 'data' / 'toy'


def toy_data_ready(root: PathLike, tasks: Sequence[str] = ('coco', 'ade', 'imagenet')) -> bool:
    """True when a complete :func:`~mmcluster.datasets.toy_data.make_toy_data` run wrote ``tasks`` into ``root``."""
    from mmcluster.datasets.toy_data import read_stamp
    stamp = read_stamp(root)
    return stamp is not None and set(tasks) <= set(stamp.get('tasks', []))


def ensure_toy_data(root: Optional[PathLike] = None, tasks: Sequence[str] = ('coco', 'ade', 'imagenet'),
                    verbose: bool = True, **sizes: int) -> Path:
    """Generate the toy data in ``root`` unless it is already complete; return ``root`` (absolute).

    Args:
        root: data root; default :func:`default_toy_data`.
        tasks: the datasets needed (``coco``, ``ade``, ``imagenet``).
        verbose: print what happens.
        **sizes: ``seed``, ``num_train``, ``num_val``, ``num_cls_per_class``, ``num_cls_val_per_class`` of
            :func:`~mmcluster.datasets.toy_data.make_toy_data` (used only when generating).
    """
    from mmcluster.datasets.toy_data import make_toy_data
    root = Path(root).resolve() if root is not None else default_toy_data()
    if toy_data_ready(root, tasks):
        if verbose:
            print(f'toy data: {root} (present)', flush=True)
        return root
    if verbose:
        print(f'toy data: generating {", ".join(tasks)} in {root} ...', flush=True)
    make_toy_data(root, tasks=tasks, **sizes)
    return root


# --------------------------------------------------------------------------- reading a work dir
def _json_lines(path: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_scalars(work_dir: PathLike) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """``(training records, evaluation records)`` of the latest run in ``work_dir``.

    mmengine appends one JSON line per logged training iteration (with ``loss`` and ``lr``) and one per
    validation (the metrics and ``step``) to ``<timestamp>/vis_data/scalars.json``; the latest timestamp
    folder that has the file is read.
    """
    paths = sorted(Path(work_dir).glob('*/vis_data/scalars.json'))
    if not paths:
        return [], []
    records = _json_lines(paths[-1])
    train = [r for r in records if 'loss' in r or 'lr' in r]
    return train, [r for r in records if not ('loss' in r or 'lr' in r)]


def _checkpoints(work_dir: Path) -> List[Tuple[int, Path]]:
    found = []
    for path in work_dir.glob('iter_*.pth'):
        try:
            found.append((int(path.stem.split('_', 1)[1]), path))
        except ValueError:
            continue
    return sorted(found)


def read_run(work_dir: PathLike) -> ToyRun:
    """What the run in ``work_dir`` reached (see :class:`ToyRun`), without running anything."""
    work_dir = Path(work_dir)
    curve, evaluations = read_scalars(work_dir)
    checkpoints = _checkpoints(work_dir)
    clock = work_dir / TrainClockHook.FILE
    val_curve = _json_lines(clock) if clock.is_file() else []
    logged = max((int(r['iter']) for r in curve if 'iter' in r), default=0)
    iters = max([logged] + [n for n, _ in checkpoints] + [int(r['iter']) for r in val_curve])
    return ToyRun(work_dir=work_dir, metrics=dict(evaluations[-1]) if evaluations else {}, iters=iters,
                  curve=curve, evaluations=evaluations, checkpoint=checkpoints[-1][1] if checkpoints else None,
                  val_curve=val_curve)


def read_test_metrics(work_dir: PathLike) -> Dict[str, Any]:
    """The metrics of the latest test run in ``work_dir`` (``<timestamp>/<timestamp>.json``)."""
    paths = sorted(Path(work_dir).glob('*/*.json'))
    if not paths:
        raise FileNotFoundError(f'no metrics json (<timestamp>/<timestamp>.json) in {work_dir}')
    return _json_lines(paths[-1])[-1]


# --------------------------------------------------------------------------- training-time clock
@register_module(HOOKS)
class TrainClockHook(Hook):
    """Budget, validate and schedule the learning rate by TRAINING time, validations excluded.

    For learning curves (accuracy against training time): the clock runs from the first iteration and stops
    while the model is validated, so the validations neither eat into the budget nor bend the curve's time
    axis. Every validation (periodic or final) appends ``{'iter', 'train_s', 'val_s', **metrics}`` to
    ``<work_dir>/train_clock.jsonl``. Use it in ``default_hooks`` (an extra key is registered like the others)
    with ``train_cfg.max_iters`` large: the budget ends the run through the loop's own condition, so the final
    checkpoint and validation happen as at ``max_iters``.

    Args:
        minutes: training-time budget; the iteration that crosses it is the last one.
        val_minutes: validate every this many minutes of training time (None: only at the end).
        time_lr: ``(warmup_fraction, final_factor)``: every parameter group's learning rate (as the optimiser
            was built, lr multipliers included) rises linearly over the first ``warmup_fraction`` of the budget
            and then follows a cosine down to ``final_factor`` times itself at the end of the budget; a schedule
            of time, so models of any speed see the same schedule shape. None: the config's schedulers.
        clock: ``'wall'`` (wall time) or ``'process'`` (CPU time of the training process, all its threads: on
            a shared machine the budget then stays what a dedicated core would give, whatever the load).
    """
    priority = 'LOW'
    FILE = 'train_clock.jsonl'

    CLOCKS = ('wall', 'process')

    def __init__(self, minutes: float, val_minutes: Optional[float] = None,
                 time_lr: Optional[Sequence[float]] = None, clock: str = 'wall') -> None:
        if clock not in self.CLOCKS:
            raise ValueError(f'clock must be one of {self.CLOCKS}, got {clock!r}')
        self._now = time.perf_counter if clock == 'wall' else time.process_time
        if minutes <= 0:
            raise ValueError(f'minutes must be positive, got {minutes}')
        if val_minutes is not None and val_minutes <= 0:
            raise ValueError(f'val_minutes must be positive or None, got {val_minutes}')
        if time_lr is not None:
            warmup, final = (float(v) for v in time_lr)
            if not (0 <= warmup < 1 and 0 <= final <= 1):
                raise ValueError(f'time_lr must be (warmup fraction in [0, 1), final factor in [0, 1]), got {time_lr}')
        self.budget_s = 60.0 * minutes
        self.val_s = None if val_minutes is None else 60.0 * val_minutes
        self.time_lr = None if time_lr is None else (warmup, final)
        self._start = self._val_start = self._wall_start = 0.0
        self._val_total = 0.0
        self._next_val = self.val_s
        self._iters = 0
        self._base_lr: List[List[float]] = []

    def train_s(self) -> float:
        """Training seconds so far (wall time since the start, validations excluded)."""
        return self._now() - self._start - self._val_total

    def lr_factor(self, fraction: float) -> float:
        """The learning-rate factor at ``fraction`` of the budget (see ``time_lr``)."""
        import math
        warmup, final = self.time_lr
        if fraction < warmup:
            return max(fraction / warmup, 1e-3)
        progress = min(1.0, (fraction - warmup) / (1.0 - warmup))
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def _optimizers(self, runner) -> list:
        wrapper = runner.optim_wrapper
        wrappers = wrapper.values() if hasattr(wrapper, 'values') else [wrapper]
        return [w.optimizer for w in wrappers]

    def before_train(self, runner) -> None:
        if not hasattr(runner.train_loop, '_max_iters'):
            raise TypeError('TrainClockHook needs an iteration-based train loop '
                            f'(got {type(runner.train_loop).__name__})')
        if self.time_lr is not None:
            self._base_lr = [[g['lr'] for g in opt.param_groups] for opt in self._optimizers(runner)]
        self._start = self._now()
        self._wall_start = time.perf_counter()

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self.time_lr is None:
            return
        factor = self.lr_factor(self.train_s() / self.budget_s)
        for opt, bases in zip(self._optimizers(runner), self._base_lr):
            for group, base in zip(opt.param_groups, bases):
                group['lr'] = base * factor

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._iters = runner.iter + 1
        elapsed = self.train_s()
        if elapsed >= self.budget_s:  # the loop validates and checkpoints at its (lowered) max_iters
            runner.train_loop._max_iters = self._iters
        elif self._next_val is not None and elapsed >= self._next_val and runner.val_loop is not None:
            while self._next_val <= elapsed:
                self._next_val += self.val_s
            runner.val_loop.run()

    def before_val_epoch(self, runner) -> None:
        self._val_start = self._now()

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, float]] = None) -> None:
        val_s = self._now() - self._val_start
        record = dict(iter=self._iters, train_s=round(self._val_start - self._start - self._val_total, 3),
                      val_s=round(val_s, 3), wall_s=round(time.perf_counter() - self._wall_start, 3))
        self._val_total += val_s
        record.update({k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float))})
        if runner.rank == 0:
            with open(Path(runner.work_dir) / self.FILE, 'a') as out:
                out.write(json.dumps(record) + '\n')


# --------------------------------------------------------------------------- running
def _options(cfg_options: CfgOptions) -> List[str]:
    if not cfg_options:
        return []
    if isinstance(cfg_options, Mapping):
        return [f'{k}={v}' for k, v in cfg_options.items()]
    return [str(o) for o in cfg_options]


MIM_SCOPES = ('mmdet', 'mmseg', 'mmpretrain')


def _mim(scope: str) -> str:
    if scope not in MIM_SCOPES:
        raise ValueError(f'mim must be one of {MIM_SCOPES} (the toolkit that runs the config), got {scope!r}')
    mim = Path(sys.executable).parent / 'mim'
    if not mim.is_file():
        raise FileNotFoundError(f'openmim is not installed in this environment ({mim} is missing)')
    return str(mim)


def _tool(name: str) -> str:
    path = REPO / 'tools' / name
    if not path.is_file():
        raise FileNotFoundError(f'{path} is missing: toy runs need a source checkout (pip install -e .)')
    return str(path)


def _env(data: Optional[PathLike], threads: Optional[int], env: Optional[Mapping[str, str]]) -> Dict[str, str]:
    out = dict(os.environ if env is None else env)
    out[TOY_DATA_ENV] = str(Path(data).resolve() if data is not None else default_toy_data())
    if threads is not None:
        out['OMP_NUM_THREADS'] = str(threads)
    return out


def _execute(cmd: List[str], env: Dict[str, str], log: Path, progress: bool, timeout: Optional[float],
             check: bool) -> Tuple[int, float]:
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, 'w') as out:  # the progress bar (stderr) stays on the terminal when asked for
        proc = subprocess.run(cmd, env=env, cwd=REPO, stdout=out, stderr=None if progress else subprocess.STDOUT,
                              timeout=timeout)
    wall = time.perf_counter() - start
    if check and proc.returncode != 0:
        tail = log.read_text(errors='replace')[-6000:]
        raise ToyRunError(f'{" ".join(cmd)} exited with {proc.returncode}; log {log}:\n{tail}')
    return proc.returncode, wall


def run_config(config: PathLike,
               work_dir: PathLike,
               *,
               minutes: Optional[float] = None,
               iters: Optional[int] = None,
               data: Optional[PathLike] = None,
               cfg_options: CfgOptions = None,
               batch_size: Optional[int] = None,
               workers: Optional[int] = 0,
               log_interval: Optional[int] = 1,
               threads: Optional[int] = 1,
               mim: Optional[str] = None,
               fresh: bool = True,
               progress: bool = False,
               log: Optional[PathLike] = None,
               timeout: Optional[float] = None,
               env: Optional[Mapping[str, str]] = None,
               check: bool = True,
               train_minutes: Optional[float] = None,
               val_every_minutes: Optional[float] = None,
               time_lr: Optional[Sequence[float]] = None,
               clock: str = 'wall') -> ToyRun:
    """Train ``config`` for ``minutes`` and / or ``iters``, validate once at the end, return what it reached.

    Or, for a learning curve, train for ``train_minutes`` of training time (validations excluded) and validate
    every ``val_every_minutes`` of it (:class:`TrainClockHook`; ``ToyRun.val_curve``).

    Args:
        config: config file.
        work_dir: the run's work dir (emptied first with ``fresh=True``).
        minutes: wall-clock budget (``TimeBudgetHook``; the run ends as if ``max_iters`` were reached: final
            checkpoint and validation). With ``iters`` too, whichever comes first ends the run.
        iters: iteration budget (``train_cfg.max_iters``; validation and checkpoint at the end).
            Neither given: the config's own schedule.
        data: toy data root (``$MMCLUSTER_TOY_DATA`` of the run); default :func:`default_toy_data`. Not
            generated here: call :func:`ensure_toy_data` first.
        cfg_options: more ``--cfg-options`` (``['k=v', ...]`` or a dict); applied after the budget's.
        batch_size: ``train_dataloader.batch_size``.
        workers: data loader worker processes (None: the config's).
        log_interval: ``default_hooks.logger.interval`` (1: one curve point per iteration; None: the config's).
        threads: ``OMP_NUM_THREADS`` of the run (None: inherited).
        mim: a toolkit scope (``'mmdet'``, ``'mmseg'``, ``'mmpretrain'``) to run ``mim train <scope>`` instead
            of ``tools/train.py`` (no ``minutes`` then: mim has no time budget).
        fresh: remove ``work_dir`` first (no stale checkpoints or logs of an earlier run).
        progress: let the run's stderr (the time-budget progress bar) through to the terminal.
        log: file for the run's output; default ``<work_dir>/run.log``.
        timeout: seconds before the subprocess is killed (``subprocess.TimeoutExpired``).
        env: base environment (default: this process's).
        check: raise :class:`ToyRunError` (with the log's tail) if the run fails.
        train_minutes: training-time budget (:class:`TrainClockHook`: validations do not count); not with
            ``minutes``. With ``iters`` too, whichever comes first ends the run.
        val_every_minutes: with ``train_minutes``: validate every this many minutes of training time.
        time_lr: with ``train_minutes``: ``(warmup_fraction, final_factor)``, the learning rate as a function
            of training time (:class:`TrainClockHook`), replacing the config's ``param_scheduler``.
        clock: with ``train_minutes``: ``'wall'`` or ``'process'`` (CPU time of the run; :class:`TrainClockHook`).

    Returns:
        :class:`ToyRun` (``wall_s`` and ``log`` set).
    """
    config, work_dir = Path(config).resolve(), Path(work_dir).resolve()
    if not config.is_file():
        raise FileNotFoundError(f'config {config} not found')
    if minutes is not None and minutes <= 0:
        raise ValueError(f'minutes must be positive, got {minutes}')
    if iters is not None and iters < 1:
        raise ValueError(f'iters must be >= 1, got {iters}')
    if mim and (minutes is not None or train_minutes is not None):
        raise ValueError('mim train has no time budget: give iters, or run tools/train.py (mim=None)')
    if train_minutes is not None and minutes is not None:
        raise ValueError('give minutes (wall clock) or train_minutes (training time), not both')
    if clock not in TrainClockHook.CLOCKS:
        raise ValueError(f'clock must be one of {TrainClockHook.CLOCKS}, got {clock!r}')
    if train_minutes is None and (val_every_minutes is not None or time_lr is not None):
        raise ValueError('val_every_minutes and time_lr need train_minutes')
    if fresh:
        shutil.rmtree(work_dir, ignore_errors=True)
    options: List[str] = []
    if iters is not None or train_minutes is not None:
        last = iters if iters is not None else 10**9  # with train_minutes the clock ends the run
        options += [f'train_cfg.max_iters={last}', f'train_cfg.val_interval={last}',
                    f'default_hooks.checkpoint.interval={last}']
    if train_minutes is not None:
        hook = 'default_hooks.train_clock'
        options += [f'{hook}.type={TrainClockHook.__module__}.{TrainClockHook.__name__}',
                    f'{hook}.minutes={train_minutes}', f'{hook}.clock={clock}']
        if val_every_minutes is not None:
            options.append(f'{hook}.val_minutes={val_every_minutes}')
        if time_lr is not None:
            options += [f'{hook}.time_lr=({float(time_lr[0])},{float(time_lr[1])})', 'param_scheduler=[]']
    if batch_size is not None:
        options.append(f'train_dataloader.batch_size={batch_size}')
    if workers is not None:
        options += [o.replace('=0', f'={workers}') if 'num_workers' in o else o for o in NO_WORKERS]
        if workers > 0:
            options = [o for o in options if 'persistent_workers' not in o]
    if log_interval is not None:
        options.append(f'default_hooks.logger.interval={log_interval}')
    options += _options(cfg_options)
    if mim:
        cmd = [_mim(mim), 'train', mim, str(config), '--gpus', '0']
    else:
        cmd = [sys.executable, _tool('train.py'), str(config)]
        if minutes is not None:
            cmd += ['--time-budget', str(minutes)]
    cmd += ['--work-dir', str(work_dir)]
    if options:
        cmd += ['--cfg-options', *options]
    log = Path(log) if log is not None else work_dir / 'run.log'
    _, wall = _execute(cmd, _env(data, threads, env), log, progress, timeout, check)
    run = read_run(work_dir)
    run.wall_s, run.log = wall, log
    return run


def evaluate_checkpoint(config: PathLike,
                    checkpoint: PathLike,
                    work_dir: PathLike,
                    *,
                    data: Optional[PathLike] = None,
                    cfg_options: CfgOptions = None,
                    workers: Optional[int] = 0,
                    threads: Optional[int] = 1,
                    mim: Optional[str] = None,
                    log: Optional[PathLike] = None,
                    timeout: Optional[float] = None,
                    env: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """Evaluate ``checkpoint`` with ``tools/test.py`` (or ``mim test <scope>``); return the metrics.

    Arguments as in :func:`run_config`; ``work_dir`` is emptied first.
    """
    config, work_dir = Path(config).resolve(), Path(work_dir).resolve()
    shutil.rmtree(work_dir, ignore_errors=True)
    options = [o for o in NO_WORKERS if o.startswith(('val', 'test'))] if workers == 0 else []
    if workers:
        options = [f'{loader}.num_workers={workers}' for loader in ('val_dataloader', 'test_dataloader')]
    options += _options(cfg_options)
    if mim:
        cmd = [_mim(mim), 'test', mim, str(config), '--checkpoint', str(checkpoint), '--gpus', '0']
    else:
        cmd = [sys.executable, _tool('test.py'), str(config), str(checkpoint)]
    cmd += ['--work-dir', str(work_dir)]
    if options:
        cmd += ['--cfg-options', *options]
    log = Path(log) if log is not None else work_dir / 'run.log'
    _execute(cmd, _env(data, threads, env), log, False, timeout, True)
    return read_test_metrics(work_dir)


def check_metrics(metrics: Mapping[str, Any], keys: Sequence[str], low: float = 0.0, high: float = 100.0) -> None:
    """Raise ``AssertionError`` unless every key is in ``metrics`` and a number in ``[low, high]``."""
    for key in keys:
        if key not in metrics:
            raise AssertionError(f'{key} missing from the metrics {sorted(metrics)}')
        value = metrics[key]
        if not isinstance(value, (int, float)) or not low <= value <= high:
            raise AssertionError(f'{key} = {value!r} is not a number in [{low}, {high}]: {dict(metrics)}')
