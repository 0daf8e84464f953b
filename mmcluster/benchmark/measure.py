"""Cost of whole models: inference latency / throughput, training-step time, peak memory, params and FLOPs.

Every model of the protocol is built once (:func:`build_subject`) and then measured in **interleaved rounds**
(:func:`measure_costs`): round r times model 1, model 2, ..., model n, then round r + 1 starts again with
model 1, so that a change of the machine's load (2 shared cores) hits every model alike; the reported number
is the median over all rounds (``repeats`` calls per round, after ``warmup`` untimed calls per model).

* **inference**: the network in ``mode='tensor'`` (the toolkits' raw head outputs, no post-processing), on a
  random normalised image of the task's input size; ``latency_ms`` at batch 1, ``throughput_ips`` = images per
  second at ``batch``.
* **training step**: ``data_preprocessor`` + ``mode='loss'`` + backward + the optimizer step
  (``OptimWrapper.update_params``) on one real batch of the protocol's training pipeline and data (the task's
  batch size unless ``train_batch`` is given), reused every step (data loading is not timed).
* every model is built from its config with the protocol's settings
  (:func:`mmcluster.benchmark.protocol.apply_protocol`): the models of a task share input size, batch size and
  optimizer, so they are measured at matched settings.
* **time**: by default the CPU time of the one measuring thread (``clock='cpu'``, :data:`CLOCKS`), which a
  shared machine's load does not stretch; wall time with several threads or on a GPU.
* **memory** (``*_mem_mib``): on the CPU the extra peak resident memory of one call, ``VmHWM - VmRSS`` before
  it, the peak counter reset through ``/proc/self/clear_refs`` (exact when glibc returns freed blocks at once:
  ``tools/benchmark.py`` runs with ``MALLOC_MMAP_THRESHOLD_`` fixed); with ``device='cuda'``
  ``torch.cuda.max_memory_allocated`` above the allocation before the call.
* on CUDA every model is measured in fp32 and under ``torch.autocast`` in fp16 and bf16 (fp16 training steps
  with a ``GradScaler``); times are taken after ``torch.cuda.synchronize()``.
"""
import math
import os
import platform
import statistics
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import torch
import torch.nn as nn

from mmcluster.utils.timing import CLOCKS

from .flops import count as count_flops

#: precisions measured per device (autocast dtypes; None = no autocast)
PRECISIONS = {'cpu': {'fp32': None}, 'cuda': {'fp32': None, 'fp16': torch.float16, 'bf16': torch.bfloat16}}
DEVICES = tuple(PRECISIONS)


def check_device(device: str) -> torch.device:
    """``torch.device(device)``; a clear error for an unknown device or CUDA without a GPU."""
    if device not in DEVICES:
        raise ValueError(f'device must be one of {DEVICES}, got {device!r}')
    if device == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('--device cuda: torch.cuda.is_available() is False on this machine (no GPU or no CUDA '
                           f'build of torch {torch.__version__}); run on the CPU (--device cpu) or on a GPU machine')
    return torch.device(device)


def machine_description(device: Optional[torch.device] = None) -> str:
    """The GPU's name for a CUDA ``device``, else the CPU's model name and core count (``/proc/cpuinfo``)."""
    if device is not None and device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), cpu)
    except OSError:
        pass
    return f'{cpu}, {os.cpu_count()} cores'


# --------------------------------------------------------------------------------------------- memory
def _proc_status(key: str, pid='self') -> float:
    """A memory field of ``/proc/<pid>/status`` (``'VmRSS'``, ``'VmHWM'``) in MiB."""
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) / 1024.0  # MiB
    raise KeyError(key)


def _reset_peak_rss() -> bool:
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


class PeakMemory:
    """Extra peak memory of a block (MiB): CPU resident memory or CUDA allocations (see the module docstring).

    ``value`` is None when the platform cannot reset the peak counter (no ``/proc/self/clear_refs``).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.value: Optional[float] = None

    def __enter__(self) -> 'PeakMemory':
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self._base = _proc_status('VmRSS') if _reset_peak_rss() else None
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            self.value = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
        elif self._base is not None:
            # the peak was reset before the base was read, so pages freed in between can put it a little below
            self.value = max(0.0, _proc_status('VmHWM') - self._base)


def synchronize(device: torch.device) -> None:
    """Wait for a CUDA device's queued work (nothing to wait for on a CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)




def default_clock(device: str, threads: int) -> str:
    """``cpu`` for one CPU thread (load-independent), else ``wall`` (several threads, or a GPU)."""
    return 'cpu' if device == 'cpu' and threads == 1 else 'wall'


def resolve_clock(clock: Optional[str], device: str, threads: int) -> str:
    """The command line's ``--clock``: :func:`default_clock` when not given; ``ValueError`` for ``cpu`` where the
    CPU time of one thread does not measure the work (a GPU, or several threads)."""
    if clock is None:
        return default_clock(device, threads)
    if clock == 'cpu' and (device != 'cpu' or threads != 1):
        raise ValueError('--clock cpu needs --device cpu and --threads 1 (the CPU time of one thread)')
    return clock


def timed(fn: Callable[[], Any], device: torch.device, clock: str = 'wall') -> float:
    """Seconds of one call of ``fn`` by ``clock`` (:data:`CLOCKS`; synchronised on CUDA)."""
    if clock not in CLOCKS:
        raise ValueError(f'clock must be one of {tuple(CLOCKS)}, got {clock!r}')
    if clock == 'cpu' and device.type != 'cpu':
        raise ValueError("clock='cpu' measures CPU work only: use clock='wall' on a GPU")
    now = CLOCKS[clock]
    synchronize(device)
    start = now()
    fn()
    synchronize(device)
    return now() - start


# --------------------------------------------------------------------------------------------- models
def repo_relative(path) -> str:
    """``path`` relative to the checkout when it lies inside it (results folders stay portable)."""
    from mmcluster.utils.toy_run import REPO
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


@dataclass
class Subject:
    """One protocol model, built, with what its inference and training step need.

    Attributes:
        run: the protocol run (``task``, ``model``, ``config``, ``input_size``, ...).
        model: the toolkit model (on ``device``).
        infer: ``infer(batch_size)`` -> a no-arg callable running the ``mode='tensor'`` forward.
        step: a no-arg callable running one training step (None if the training batch could not be made).
        train_shape: input shape of the training batch (after the data preprocessor).
        error: why the subject could not be built (then nothing else is set).
    """
    run: Any
    model: Optional[nn.Module] = None
    infer: Optional[Callable[[int], Callable[[], Any]]] = None
    step: Optional[Callable[[], Any]] = None
    train_shape: Optional[List[int]] = None
    error: Optional[str] = None


def load_config(run, mode: str, data: Optional[Path] = None):
    """The run's config as the protocol trains it (:func:`~mmcluster.benchmark.protocol.apply_protocol`: input
    size, batch size, optimizer of the task), its ``cfg_options`` merged; the protocol's data root through
    ``$MMCLUSTER_TOY_DATA`` (read by the configs while they are parsed)."""
    from mmengine.config import Config

    from .protocol import apply_protocol
    if data is not None:
        os.environ['MMCLUSTER_TOY_DATA'] = str(Path(data).resolve())
    cfg = apply_protocol(Config.fromfile(str(run.config)), run.task, mode)
    if run.cfg_options:
        cfg.merge_from_dict(dict(run.cfg_options))
    return cfg


def _tensor_forward(model: nn.Module, scope: str, size: Sequence[int], batch: int,
                    device: torch.device) -> Callable[[], Any]:
    from .flops import get_flops_module
    h, w = size
    inputs = torch.randn(batch, 3, h, w, device=device)
    samples = get_flops_module()._det_data_samples(h, w) * batch if scope == 'mmdet' else None
    if samples is not None:
        samples = [s.to(device) for s in samples]

    def forward():
        with torch.no_grad():
            return model(inputs, samples, mode='tensor')

    return forward


def _train_batch(cfg, batch: Optional[int]) -> Dict[str, Any]:
    """One batch of the config's own training pipeline (no workers; ``batch`` None: the config's batch size)."""
    from mmengine.runner import Runner
    loader_cfg = cfg.train_dataloader.copy()
    loader_cfg.update(num_workers=0, persistent_workers=False)
    if batch is not None:
        loader_cfg.update(batch_size=batch)
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    return next(iter(loader))


def _train_step(model: nn.Module, cfg, batch: Dict[str, Any], autocast_dtype, device: torch.device):
    from mmengine.optim import build_optim_wrapper
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper.copy())
    scaler = torch.amp.GradScaler('cuda') if autocast_dtype == torch.float16 else None
    context = (lambda: torch.autocast('cuda', dtype=autocast_dtype)) if autocast_dtype is not None else nullcontext

    def step():
        model.train()
        with context():
            data = model.data_preprocessor(batch, True)
            losses = model(**data, mode='loss')
            loss, _ = model.parse_losses(losses)
        if scaler is None:
            wrapper.update_params(loss)
        else:  # fp16 autocast: scale the loss so that small gradients survive
            wrapper.optimizer.zero_grad()
            scaler.scale(loss).backward()
            scaler.step(wrapper.optimizer)
            scaler.update()
        return loss

    return step


def build_subject(run, mode: str, device: torch.device, train_batch: Optional[int], data: Optional[Path] = None,
                  autocast_dtype=None) -> Subject:
    """Build the run's model (the protocol's config of ``mode``) on ``device`` and prepare its inference and
    training-step callables."""
    from mmengine.registry import MODELS, init_default_scope
    subject = Subject(run)
    try:
        cfg = load_config(run, mode, data)
        scope = cfg.get('default_scope', 'mmengine')
        init_default_scope(scope)
        torch.manual_seed(0)
        model = MODELS.build(cfg.model).to(device)
        subject.model = model
        context = (lambda: torch.autocast('cuda', dtype=autocast_dtype)) if autocast_dtype is not None \
            else nullcontext

        def infer(batch: int) -> Callable[[], Any]:
            forward = _tensor_forward(model, scope, run.input_size, batch, device)

            def call():
                model.eval()
                with context():
                    return forward()

            return call

        subject.infer = infer
        batch = _train_batch(cfg, train_batch)
        subject.train_shape = list(model.data_preprocessor(batch, True)['inputs'].shape)
        subject.step = _train_step(model, cfg, batch, autocast_dtype, device)
    except Exception as exc:  # a model that cannot be built is reported, the others are still measured
        subject.error = f'{type(exc).__name__}: {exc}'.splitlines()[0][:300]
    return subject


# --------------------------------------------------------------------------------------------- rounds
@dataclass
class _Samples:
    latency: List[float] = field(default_factory=list)
    batch: List[float] = field(default_factory=list)
    step: List[float] = field(default_factory=list)
    infer_mem: List[float] = field(default_factory=list)
    train_mem: List[float] = field(default_factory=list)
    error: Optional[str] = None


def _median(values: Sequence[float]) -> Optional[float]:
    return statistics.median(values) if values else None


def _measure_round(subject: Subject, calls: Dict[str, Callable], samples: _Samples, repeats: int,
                   device: torch.device, clock: str) -> None:
    """``repeats`` timed calls of each measurement; the peak memory is read around the same calls (resetting
    and reading the counter costs microseconds, so no extra calls are needed for it)."""
    for _ in range(repeats):
        with PeakMemory(device) as mem:
            samples.latency.append(timed(calls['latency'], device, clock))
        if mem.value is not None:
            samples.infer_mem.append(mem.value)
        samples.batch.append(timed(calls['batch'], device, clock))
        if subject.step is not None:
            with PeakMemory(device) as mem:
                samples.step.append(timed(subject.step, device, clock))
            if mem.value is not None:
                samples.train_mem.append(mem.value)


def measure_costs(runs: Sequence[Any], *, mode: str = 'full', device: str = 'cpu', rounds: int = 3,
                  repeats: int = 2, warmup: int = 1, batch: int = 4, train_batch: Optional[int] = None,
                  data: Optional[Path] = None, flops: bool = True, clock: Optional[str] = None,
                  log: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """Cost rows of every protocol run (one per run and precision), ratios to the task's baseline included.

    Args:
        runs: protocol runs (:class:`mmcluster.benchmark.protocol.ProtocolRun`).
        mode: the protocol mode whose settings the models are built with.
        device: ``'cpu'`` or ``'cuda'`` (then also fp16 / bf16 autocast rows).
        rounds: interleaved rounds over all models.
        repeats: timed calls per model and round.
        warmup: untimed calls per model before the first round.
        batch: batch size of the throughput measurement.
        train_batch: batch size of the training step (None: the protocol's batch size of the task).
        data: the protocol's data root.
        flops: also count params / FLOPs at each run's input size.
        clock: ``'cpu'`` or ``'wall'`` (:data:`CLOCKS`); default :func:`default_clock` (``cpu`` for one CPU
            thread).
        log: progress printer.

    Returns:
        Row dicts (see :func:`cost_row`), in the order of ``runs``, precision by precision.
    """
    dev = check_device(device)
    clock = clock or default_clock(device, torch.get_num_threads())
    rows: List[Dict[str, Any]] = []
    counted: Dict[str, Dict[str, Any]] = {}
    if flops:
        for run in runs:
            try:
                counted[run.model] = count_flops(load_config(run, mode, data), run.input_size)
            except Exception as exc:
                counted[run.model] = dict(error=f'{type(exc).__name__}: {exc}'.splitlines()[0][:300])
    for precision, dtype in PRECISIONS[dev.type].items():
        log(f'building {len(runs)} models ({precision}) ...')
        subjects = [build_subject(run, mode, dev, train_batch, data, dtype) for run in runs]
        samples = [_Samples(error=s.error) for s in subjects]
        calls = [dict(latency=s.infer(1), batch=s.infer(batch)) if s.error is None else {} for s in subjects]
        for subject, sample, call in zip(subjects, samples, calls):
            if sample.error is not None:
                log(f'  {subject.run.model}: failed to build: {sample.error}')
                continue
            try:
                for _ in range(warmup):
                    call['latency']()
                    call['batch']()
                    if subject.step is not None:
                        subject.step()
            except Exception as exc:
                sample.error = f'{type(exc).__name__}: {exc}'.splitlines()[0][:300]
                log(f'  {subject.run.model}: failed in warm-up: {sample.error}')
        for r in range(rounds):
            log(f'round {r + 1}/{rounds} ({precision}) ...')
            for subject, sample, call in zip(subjects, samples, calls):
                if sample.error is None:
                    try:
                        _measure_round(subject, call, sample, repeats, dev, clock)
                    except Exception as exc:
                        sample.error = f'{type(exc).__name__}: {exc}'.splitlines()[0][:300]
        for subject, sample in zip(subjects, samples):
            rows.append(dict(cost_row(subject, sample, precision, batch, train_batch, counted.get(subject.run.model)),
                             clock=clock))
        del subjects, calls
        if dev.type == 'cuda':
            torch.cuda.empty_cache()  # the next precision's models start from an empty cache
    add_ratios(rows)
    return rows


def cost_row(subject: Subject, sample: _Samples, precision: str, batch: int, train_batch: Optional[int],
             counted: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The JSON row of one model: identity, medians, FLOPs (None where not measured) and any error."""
    run = subject.run
    latency = _median(sample.latency)
    batch_time = _median(sample.batch)
    row = dict(task=run.task, model=run.model, family=run.family, config=repo_relative(run.config),
               is_baseline=bool(run.is_baseline), precision=precision, input_size=list(run.input_size),
               train_shape=subject.train_shape, batch=batch,
               train_batch=subject.train_shape[0] if subject.train_shape else train_batch,
               samples=len(sample.latency),
               latency_ms=None if latency is None else 1e3 * latency,
               throughput_ips=None if not batch_time else batch / batch_time,
               train_step_ms=None if not sample.step else 1e3 * _median(sample.step),
               infer_mem_mib=_median(sample.infer_mem), train_mem_mib=_median(sample.train_mem),
               params=None, flops=None, uncounted={}, error=sample.error)
    if counted:
        if 'error' in counted:
            row['flops_error'] = counted['error']
        else:
            row.update(params=counted['params'], flops=counted['flops'], uncounted=counted['uncounted'])
    return row


#: measured quantity -> the ratio column ``<name>_ratio`` (model / baseline of the same task and precision)
RATIO_KEYS = ('params', 'flops', 'latency_ms', 'throughput_ips', 'train_step_ms', 'infer_mem_mib', 'train_mem_mib')


def add_ratios(rows: List[Dict[str, Any]]) -> None:
    """``<key>_ratio`` = value / the same task's baseline value (same precision, same run); None if either is
    missing. The first baseline row of a task is its reference (``baseline`` names it)."""
    baselines: Dict[tuple, Dict[str, Any]] = {}
    for row in rows:
        if row['is_baseline']:
            baselines.setdefault((row['task'], row['precision']), row)
    for row in rows:
        base = baselines.get((row['task'], row['precision']))
        row['baseline'] = None if base is None else base['model']
        for key in RATIO_KEYS:
            ours, ref = row.get(key), None if base is None else base.get(key)
            ok = isinstance(ours, (int, float)) and isinstance(ref, (int, float)) and ref > 0 and math.isfinite(ref)
            row[f'{key}_ratio'] = ours / ref if ok else None


@contextmanager
def threads(n: int) -> Iterator[None]:
    """``torch.set_num_threads(n)`` inside the block (one thread by default: comparable on a shared machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
