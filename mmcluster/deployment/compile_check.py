"""``torch.compile`` checks: graph breaks, equality with eager, eager vs compiled latency, compile time.

Graph breaks are found with ``torch._dynamo.explain`` (dynamo only, no backend compile) and grouped by cause and
by the mmcluster function where they happen (file and function, not line, so the grouping survives edits).
Every cause known today is listed in :data:`KNOWN_BREAKS` with the reason it stays; ``docs/deployment.md``
explains each, and ``tests/test_deployment/test_compile.py`` fails on a break outside the list.
"""
import copy
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from .models import DeployWrapper, compare_outputs, flat_tensors
from mmcluster.utils.timing import interleaved_ms

__all__ = ['GraphBreak', 'CompileResult', 'KNOWN_BREAKS', 'COMPILE_MODES', 'torch_compile_mode', 'graph_breaks',
           'unknown_breaks', 'compile_check', 'compile_train_check', 'disable_randomness', 'restore_randomness',
           'forward_backward', 'largest_grad_difference']

#: ``torch.compile`` modes offered by the tools (``'default'``: torch's default, no ``mode`` argument;
#: max-autotune: inductor also benchmarks its own GEMM kernels against the library's, longer compiles)
COMPILE_MODES = ('default', 'max-autotune-no-cudagraphs', 'max-autotune')


def torch_compile_mode(name: str) -> Optional[str]:
    """The ``mode`` argument of ``torch.compile`` for a name of :data:`COMPILE_MODES`."""
    if name not in COMPILE_MODES:
        raise ValueError(f'compile mode must be one of {COMPILE_MODES}, got {name!r}')
    return None if name == 'default' else name

#: ``(file under mmcluster/, function)`` -> why dynamo breaks the graph there (``docs/deployment.md``)
KNOWN_BREAKS: Dict[Tuple[str, str], str] = {
    ('models/utils/input_check.py', 'check_images'):
        'input validation: `bool(torch.isfinite(x).all())` is a data-dependent Python branch (NaN / Inf '
        'pixels raise); one break at the backbone entry',
    ('models/layers/dpc_knn.py', '_validate'):
        'input validation of DPC-kNN: `bool(torch.isfinite(x).all())`, data-dependent branch',
    ('models/layers/dpc_knn.py', '_scores'):
        'DPC-kNN pass 2b: the number of local density peaks that need a full distance row '
        '(`int(counts.max())`) sets the size of the work: a data-dependent shape',
    ('models/utils/cluster_record.py', 'record_clusters'):
        'building a ClusterRecord (a dataclass appended to a Python list) while recording: only when the '
        'assignments are asked for (the deployment wrapper; visualisation), never in plain inference',
    # found in the toy configs' whole models (heads, necks and the toolkits' parts they use)
    ('models/utils/input_check.py', 'check_finite_features'):
        "input validation of a head's feature maps (a toolkit backbone checks nothing): "
        '`bool(torch.isfinite(f).all())`, data-dependent branch',
    ('models/heads/clusterformer_detr.py', 'encoder_centres'):
        "the lowest encoder level's slice is read from the `spatial_shapes` tensor that mmdet's DETR passes "
        '(`int(...)`): a data-dependent Python int',
    ('models/layers/hc_clustering.py', '_candidate_rows'):
        'the 3x3 candidates are an overlapping strided view (`as_strided` at `storage_offset()`) of the padded '
        'coarse embedding, which dynamo does not trace; it avoids a 9x copy',
    ('models/layers/hc_clustering.py', 'forward'):
        "recording metadata (the learned scale as a Python float): only when assignments are recorded",
    ('models/layers/kmeans_cross_attention.py', 'kmax_resize'):
        "kMaX's TF-convention resize picks `align_corners` from the target width in Python ints, which "
        'dynamo cannot fake-trace',
    ('multi_scale_deform_attn.py', 'multi_scale_deformable_attn_pytorch'):
        "mmcv's CPU deformable attention (Deformable-DETR-style heads): data-dependent splits by level sizes",
    ('roi_align.py', 'forward'):
        "mmcv's RoIAlign: a compiled op dynamo skips (Mask R-CNN heads)",
    ('rpn_head.py', '_bbox_post_process'):
        "mmdet's RPN proposal filtering branches on tensor values (Mask R-CNN)",
}


@dataclass
class GraphBreak:
    """One cause of graph breaks: the reason's first line, the mmcluster function, and how often it broke."""
    reason: str
    where: Tuple[str, str]
    count: int = 1

    @property
    def known(self) -> bool:
        return self.where in KNOWN_BREAKS

    def __str__(self) -> str:
        return f'{self.where[0]}:{self.where[1]} x{self.count}: {self.reason}'


@dataclass
class CompileResult:
    """What :func:`compile_check` measured (``error`` set when compiling or running the compiled model failed)."""
    name: str
    backend: str
    graphs: Optional[int] = None
    breaks: List[GraphBreak] = field(default_factory=list)
    compile_s: Optional[float] = None
    eager_ms: Optional[float] = None
    compiled_ms: Optional[float] = None
    max_abs: Optional[float] = None
    max_rel: Optional[float] = None
    assign_agree: Optional[float] = None
    records_lost: bool = False
    error: Optional[str] = None
    grad_rel: Optional[float] = None

    @property
    def num_breaks(self) -> Optional[int]:
        return None if self.graphs is None else sum(b.count for b in self.breaks)

    @property
    def outputs_equal(self) -> bool:
        """Compiled outputs equal eager's (relative 1e-4 of each output's largest value), so do the cluster
        ids when dynamo keeps their records, and (training check) every parameter's gradient (relative 1e-4)."""
        return ((self.max_rel or 0) <= 1e-4 and (self.grad_rel or 0) <= 1e-4
                and self.assign_agree in (None, 1.0))


def _where(frames: List[Any]) -> Tuple[str, str]:
    """The innermost frame inside mmcluster as ``(path under mmcluster/, function)`` (else the innermost frame's
    file name and function, e.g. an mmcv op)."""
    for frame in reversed(frames or []):
        path = frame.filename.replace('\\', '/')
        if '/mmcluster/' in path and '/deployment/' not in path:
            return path.rsplit('/mmcluster/', 1)[1], frame.name
    if frames:
        return frames[-1].filename.rsplit('/', 1)[-1], frames[-1].name
    return '?', '?'


def graph_breaks(fn: Callable, *args: Any) -> Tuple[int, List[GraphBreak]]:
    """``(number of graphs, causes of graph breaks)`` of ``fn(*args)`` under dynamo (no gradient).

    Args:
        fn: a module or function.
        *args: its example inputs.
    """
    torch._dynamo.reset()
    with torch.no_grad():
        explanation = torch._dynamo.explain(fn)(*args)
    counts: Counter = Counter()
    for b in explanation.break_reasons:
        reason = next((line.strip() for line in str(b.reason).splitlines() if line.strip()), '?')
        counts[(reason, _where(b.user_stack))] += 1
    torch._dynamo.reset()
    return explanation.graph_count, [GraphBreak(reason, where, n) for (reason, where), n in counts.items()]


def unknown_breaks(breaks: List[GraphBreak]) -> List[GraphBreak]:
    """The breaks whose place is not in :data:`KNOWN_BREAKS` (a new cause, to fix or to document)."""
    return [b for b in breaks if not b.known]


def compile_check(name: str, module: nn.Module, x: Tensor, backend: str = 'inductor', rounds: int = 5,
                  explain: bool = True, timing: bool = True, freezing: bool = False,
                  mode: Optional[str] = None) -> CompileResult:
    """Compile ``module`` for input ``x`` and compare it with eager (inference, no gradient).

    Args:
        name: the row's name.
        module: a :class:`~mmcluster.deployment.models.DeployWrapper` (or any module returning tensors).
        x: the input.
        backend: ``torch.compile`` backend (``'inductor'``; ``'aot_eager'`` / ``'eager'`` check tracing only).
        rounds: interleaved timing rounds (median).
        explain: also count the graph breaks with ``torch._dynamo.explain``.
        timing: measure eager and compiled latency.
        freezing: inductor's inference mode ``torch._inductor.config.freezing``: the weights become constants
            of the graph, so that it can pre-pack them for oneDNN and fold what depends on them only.
        mode: ``torch.compile``'s ``mode`` (None: the default; ``'max-autotune-no-cudagraphs'``: inductor also
            benchmarks its own GEMM kernels against the library's at compile time).

    Returns:
        A :class:`CompileResult`; ``compile_s`` is the first compiled call (compile + one run) minus one eager
        run.
    """
    result = CompileResult(name=name, backend=backend + (' (freezing)' if freezing else '')
                           + (f', {mode}' if mode else ''))
    import torch._inductor.config as inductor_config
    try:
        with inductor_config.patch(freezing=freezing):
            _compile_and_compare(result, module, x, backend, rounds, explain, timing, mode)
    except Exception as e:  # reported in the row: one model failing must not hide the others
        result.error = _error_text(e)
    finally:
        torch._dynamo.reset()
    return result


def _error_text(e: Exception) -> str:
    """A row's error: the exception's type and first line, and the innermost three frames."""
    text = f'{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ""}'
    return text + ' @ ' + ' <- '.join(f'{f.name}' for f in traceback.extract_tb(e.__traceback__)[-3:])


def _compile_and_compare(result: CompileResult, module: nn.Module, x: Tensor, backend: str, rounds: int,
                         explain: bool, timing: bool, mode: Optional[str] = None) -> None:
    """The body of :func:`compile_check`, filling ``result``."""
    with torch.no_grad():
        start = time.perf_counter()
        ref = module(x)
        eager_once = time.perf_counter() - start
    if explain:
        result.graphs, result.breaks = graph_breaks(module, x)
    torch._dynamo.reset()
    if isinstance(module, DeployWrapper):  # compile the model; the records are gathered around it
        inner = torch.compile(module.model, backend=backend, dynamic=False, mode=mode)

        def compiled(inputs):
            return module.run(inner, inputs)
    else:
        compiled = torch.compile(module, backend=backend, dynamic=False, mode=mode)
    with torch.no_grad():
        start = time.perf_counter()
        out = compiled(x)
        result.compile_s = max(time.perf_counter() - start - eager_once, 0.0)
        if len(out) < len(ref) and isinstance(module, DeployWrapper):
            # the cluster records were not gathered from the compiled model (known limitation: the
            # record's list append is lost across dynamo's graph breaks); compare the model's outputs
            n_model = sum(name.startswith('out') for name in module.output_names(x))
            ref, out = ref[:n_model], out[:n_model]
            result.records_lost = True
        diff = compare_outputs(ref, out)
        if diff['shape_errors']:
            raise RuntimeError(f'compiled outputs differ in shape: {diff["shape_errors"]}')
        result.max_abs, result.max_rel, result.assign_agree = diff['max_abs'], diff['max_rel'], diff['assign_agree']
        if timing:
            ms = interleaved_ms(dict(eager=lambda: module(x), compiled=lambda: compiled(x)), rounds=rounds)
            result.eager_ms, result.compiled_ms = ms['eager'], ms['compiled']


def disable_randomness(model: nn.Module) -> Dict[nn.Module, Tuple[str, float]]:
    """Set ``model``'s dropout and stochastic-depth rates to 0 (in place) and return the previous ones for
    :func:`restore_randomness`: compiled code draws other random numbers than eager, so a comparison of the two
    needs deterministic layers."""
    saved = {}
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            saved[module] = ('p', module.p)
        elif isinstance(getattr(module, 'drop_prob', None), float):  # DropPath (mmcv, timm, ours)
            saved[module] = ('drop_prob', module.drop_prob)
    for module, (attr, _) in saved.items():
        setattr(module, attr, 0.0)
    return saved


def restore_randomness(saved: Dict[nn.Module, Tuple[str, float]]) -> None:
    """Undo :func:`disable_randomness`."""
    for module, (attr, rate) in saved.items():
        setattr(module, attr, rate)


def forward_backward(model: Callable, x: Tensor) -> List[Tensor]:
    """Forward, a scalar loss over every float output (fixed weights, so no gradient is uniform), backward;
    returns the outputs."""
    outputs = [t for t in flat_tensors(model(x)) if t.is_floating_point()]
    loss = sum((t.float() * torch.linspace(-1, 1, t.numel(), device=t.device).view_as(t)).sum() for t in outputs)
    loss.backward()
    return [t.detach() for t in outputs]


def largest_grad_difference(reference: nn.Module, subject: nn.Module, floor: float = 1e-3) -> float:
    """Largest difference of a parameter's gradient, relative to the largest magnitude of eager's, or to
    ``floor`` times the largest gradient of the whole model if that is more: a parameter whose exact gradient
    is zero (ClusTR's score bias: the merge's per-cluster softmax ignores a shift of all scores) has a gradient
    of rounding noise (~1e-8) in both, which a purely relative comparison would report."""
    pairs = []
    for (name, p), q in zip(reference.named_parameters(), subject.parameters()):
        if p.grad is None and q.grad is None:
            continue
        if p.grad is None or q.grad is None:
            raise RuntimeError(f'gradient of {name}: {"eager" if p.grad is None else "compiled"} has none')
        pairs.append((p.grad.double(), q.grad.double()))
    largest = max((float(g.abs().max()) for g, _ in pairs), default=0.0)
    worst = 0.0
    for g, h in pairs:
        scale = max(float(g.abs().max()), floor * largest, 1e-30)
        worst = max(worst, float((g - h).abs().max()) / scale)
    return worst


def compile_train_check(name: str, model: nn.Module, inputs: List[Tensor], backend: str = 'inductor',
                        rounds: int = 5, timing: bool = True, mode: Optional[str] = None,
                        dynamic: Optional[bool] = False) -> CompileResult:
    """Compile ``model``'s training step (forward + backward) and compare it with eager, at every input size.

    mmengine's ``Runner`` compiles ``train_step`` with ``torch.compile(**cfg.compile)``. ``dynamic=False`` (the
    default here; ``compile=dict(dynamic=False)`` in a config) compiles every input size on its own.
    ``dynamic=None`` is torch's default (``compile=True``): a size seen a second time -- also a stage's block
    code called again at the next stage's size within one forward -- is recompiled for symbolic sizes, which
    inductor (torch 2.14) cannot compile for ClusTR, Context Clusters, ClusterFormer and the kMaX ConvNeXt
    (``docs/deployment.md``).

    Args:
        name: the row's name.
        model: the model (not modified: eager and compiled copies are made, in training mode, with dropout and
            stochastic depth switched off so that both compute the same function).
        inputs: one input per size to check; the first is also timed.
        backend: ``torch.compile`` backend.
        rounds: interleaved timing rounds (median) of the training step.
        timing: measure eager and compiled training steps.
        mode: ``torch.compile``'s ``mode``.
        dynamic: ``torch.compile``'s ``dynamic`` (False: static sizes; None: torch's default).

    Returns:
        A :class:`CompileResult` with ``max_rel`` over the outputs and ``grad_rel`` over the parameter gradients
        (worst size), ``compile_s`` summed over the sizes (first compiled step minus one eager step each),
        ``eager_ms`` / ``compiled_ms`` of one training step at the first size.
    """
    label = f'{backend} (train' + ('' if dynamic is False else f', dynamic={dynamic}') + ')'
    result = CompileResult(name=name, backend=label + (f', {mode}' if mode else ''))
    try:
        reference, subject = copy.deepcopy(model).train(), copy.deepcopy(model).train()
        disable_randomness(reference)
        disable_randomness(subject)
        compiled = torch.compile(subject, backend=backend, dynamic=dynamic, mode=mode)
        result.compile_s = result.max_abs = result.max_rel = result.grad_rel = 0.0
        for x in inputs:
            for m in (reference, subject):
                m.zero_grad(set_to_none=True)
            start = time.perf_counter()
            ref = forward_backward(reference, x)
            eager_s = time.perf_counter() - start
            start = time.perf_counter()
            out = forward_backward(compiled, x)
            result.compile_s += max(time.perf_counter() - start - eager_s, 0.0)
            diff = compare_outputs(ref, out)
            if diff['shape_errors']:
                raise RuntimeError(f'compiled outputs differ in shape: {diff["shape_errors"]}')
            result.max_abs = max(result.max_abs, diff['max_abs'])
            result.max_rel = max(result.max_rel, diff['max_rel'])
            result.grad_rel = max(result.grad_rel, largest_grad_difference(reference, subject))
        if timing:
            def step(m: Callable, params: nn.Module) -> Callable[[], None]:
                def run() -> None:
                    forward_backward(m, inputs[0])
                    params.zero_grad(set_to_none=True)  # as an optimiser step would: no growing grads
                return run

            ms = interleaved_ms(dict(eager=step(reference, reference), compiled=step(compiled, subject)),
                                rounds=rounds, rewarm=1)
            result.eager_ms, result.compiled_ms = ms['eager'], ms['compiled']
    except Exception as e:  # reported in the row: one model failing must not hide the others
        result.error = _error_text(e)
    finally:
        torch._dynamo.reset()
    return result
