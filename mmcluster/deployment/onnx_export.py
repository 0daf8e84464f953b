"""ONNX export of a :class:`~mmcluster.deployment.models.DeployWrapper` and its check with onnxruntime.

Exporter: torch 2.14 has two. The default ``dynamo=True`` exporter (``torch.export`` + onnxscript) refuses any
data-dependent Python value, and every clustering family has one on its path (the NaN check at a backbone's
door, DPC-kNN's number of density peaks, the CoC region layout built with ``int(t.max())``), so it exports only
the kMaX ConvNeXt; it is also ten times slower. The TorchScript exporter (``dynamo=False``) traces the Python
code once, so such a value becomes a constant of the graph: harmless for a check that passed, and for a value
that depends only on the input size (the graph is then valid for that size only), wrong for a value that
depends on the pixels. :func:`check_onnx` therefore compares onnxruntime with PyTorch on *other* inputs than the
export example, at the export size and at other sizes, including the cluster assignments.

Two symbolics of the TorchScript exporter are replaced: ``torch.sort(..., stable=True)`` (DPC-kNN's total
orders), which it does not know, becomes ONNX ``TopK`` with ``k = size``, whose specification breaks ties by the
lower index, i.e. a stable sort; ``index_add`` (merging tokens into clusters), which it exports as a scatter
without reduction (wrong for repeated indices: the last token wins instead of the sum), becomes
``ScatterElements(reduction='add')``.
"""
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .models import DeployWrapper, compare_outputs
from mmcluster.utils.timing import interleaved_ms

__all__ = ['OPSET', 'SizeCheck', 'ExportResult', 'register_symbolics', 'export_onnx', 'ort_session', 'check_onnx',
           'benchmark_onnx']

OPSET = 17
_REGISTERED = False


def _sort_symbolic(g, self, *args):
    """``aten::sort`` (and ``sort.stable``) as ``TopK(k = size along dim)``: ONNX TopK puts equal values in
    index order, so the result is the stable sort torch gives with ``stable=True``."""
    from torch.onnx import symbolic_helper as sh
    if len(args) == 3:  # sort.stable(self, *, stable, dim, descending)
        _, dim, descending = args
    else:  # sort(self, dim, descending)
        dim, descending = args
    dim = sh._get_const(dim, 'i', 'dim')
    descending = bool(sh._maybe_get_const(descending, 'b'))
    scalar = sh._try_get_scalar_type(self)
    values_in = self
    cast_back = None
    if scalar is not None and scalar.scalar_name() not in ('Float', 'Double', 'Long', 'Int', 'Half'):
        # onnxruntime's TopK takes no bool / uint8: sort their (exact) float values, cast the values back
        cast_back = scalar.onnx_type()
        values_in = g.op('Cast', self, to_i=torch.onnx._C_onnx.TensorProtoDataType.FLOAT)
    shape = g.op('Shape', values_in)
    k = g.op('Gather', shape, g.op('Constant', value_t=torch.tensor([dim], dtype=torch.long)), axis_i=0)
    values, indices = g.op('TopK', values_in, k, axis_i=dim, largest_i=int(descending), sorted_i=1, outputs=2)
    if cast_back is not None:
        values = g.op('Cast', values, to_i=cast_back)
    return values, indices


def _index_add_symbolic(g, self, dim, index, source, alpha=None):
    """``aten::index_add`` as ``ScatterElements(reduction='add')``: the exporter's own symbolic scatters without
    reduction, so repeated indices (tokens merged into one cluster, :func:`~mmcluster.models.layers.dpc_knn.
    merge_tokens`) keep only the last source instead of their sum."""
    from torch.onnx import symbolic_helper as sh
    dim = sh._get_const(dim, 'i', 'dim')
    rank = sh._get_tensor_rank(source)
    if rank is None:
        raise RuntimeError('index_add export needs the rank of its source')
    dim = dim % rank
    if alpha is not None and not sh._is_none(alpha):
        scale = sh._maybe_get_const(alpha, 'f')
        if not isinstance(scale, (int, float)) or scale != 1:
            source = g.op('Mul', source, alpha)
    view = [1] * rank
    view[dim] = -1
    index = g.op('Reshape', index, g.op('Constant', value_t=torch.tensor(view, dtype=torch.long)))
    index = g.op('Expand', index, g.op('Shape', source))
    return g.op('ScatterElements', self, index, source, axis_i=dim, reduction_s='add')


_REDUCTIONS = {'sum': 'add', 'prod': 'mul', 'amax': 'max', 'amin': 'min'}


def _scatter_reduce_symbolic(g, self, dim, index, src, reduce, include_self):
    """``aten::scatter_reduce`` (``include_self=True``) as one ``ScatterElements(reduction=...)``. The exporter's
    own symbolic wraps it in ``If`` nodes whose branches have different output ranks; onnxruntime runs them
    only after its optimiser folded the condition, and a graph around them gave wrong results (ClusTR)."""
    from torch.onnx import symbolic_helper as sh
    reduce = sh._get_const(reduce, 's', 'reduce')
    if reduce not in _REDUCTIONS or not sh._get_const(include_self, 'b', 'include_self'):
        raise RuntimeError(f'scatter_reduce export supports include_self=True with reduce in {sorted(_REDUCTIONS)}, '
                           f'got reduce={reduce!r}')
    dim = sh._get_const(dim, 'i', 'dim')
    return g.op('ScatterElements', self, index, src, axis_i=dim, reduction_s=_REDUCTIONS[reduce])


def register_symbolics() -> None:
    """Register the extra symbolics of the TorchScript exporter (once per process)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from torch.onnx.utils import register_custom_op_symbolic
    register_custom_op_symbolic('aten::sort', _sort_symbolic, OPSET)
    register_custom_op_symbolic('aten::index_add', _index_add_symbolic, OPSET)
    register_custom_op_symbolic('aten::scatter_reduce', _scatter_reduce_symbolic, OPSET)
    _REGISTERED = True


def export_onnx(wrapper: DeployWrapper, example: Tensor, path: Union[str, Path], dynamic: bool = True) -> List[str]:
    """Export ``wrapper`` for inputs like ``example`` to ``path`` (TorchScript exporter, opset :data:`OPSET`).

    Args:
        wrapper: the model as a tensor function.
        example: the export input ``[B, 3, H, W]``.
        path: the ``.onnx`` file to write.
        dynamic: declare the batch, height and width of the input dynamic (whether the graph really holds at
            other sizes is for :func:`check_onnx` to find: values computed in Python from the size are frozen).

    Returns:
        The output names.
    """
    import warnings
    register_symbolics()
    names = wrapper.output_names(example)
    axes = {'images': {0: 'batch', 2: 'height', 3: 'width'}} if dynamic else None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # TracerWarnings: the frozen Python values that check_onnx tests
        torch.onnx.export(wrapper, (example, ), str(path), dynamo=False, opset_version=OPSET, input_names=['images'],
                          output_names=names, dynamic_axes=axes, do_constant_folding=True)
    return names


def ort_session(path: Union[str, Path], threads: int = 1):
    """An onnxruntime CPU session with ``threads`` intra-op threads (one, like the PyTorch side)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors are returned as exceptions; no console noise
    return ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])


@dataclass
class SizeCheck:
    """onnxruntime against PyTorch on one input (``error``: onnxruntime could not run this size)."""
    shape: Tuple[int, int]
    max_abs: Optional[float] = None
    max_rel: Optional[float] = None
    assign_agree: Optional[float] = None
    error: Optional[str] = None

    def ok(self, rtol: float = 1e-4, min_agree: float = 1.0) -> bool:
        return (self.error is None and self.max_rel is not None and self.max_rel <= rtol
                and (self.assign_agree is None or self.assign_agree >= min_agree))


@dataclass
class ExportResult:
    """One exported model: where, how long, and its checks per input size."""
    name: str
    path: Optional[str] = None
    export_s: Optional[float] = None
    export_shape: Optional[Tuple[int, int]] = None
    outputs: List[str] = field(default_factory=list)
    checks: List[SizeCheck] = field(default_factory=list)
    ort_ms: Optional[float] = None
    torch_ms: Optional[float] = None
    error: Optional[str] = None

    @property
    def export_size_ok(self) -> bool:
        same = [c for c in self.checks if c.shape == self.export_shape]
        return bool(same) and all(c.ok() for c in same)

    @property
    def dynamic_ok(self) -> Optional[bool]:
        """Whether every check at another size passed (``None``: no other size checked)."""
        other = [c for c in self.checks if c.shape != self.export_shape]
        return None if not other else all(c.ok() for c in other)


def check_onnx(session, wrapper: DeployWrapper, shapes: Sequence[Tuple[int, int]], batch: int = 1,
               seed: int = 1, channels: int = 3) -> List[SizeCheck]:
    """Run ``session`` and ``wrapper`` on the same random input ``[batch, channels, H, W]`` of each shape (new
    pixels, not the export example) and compare every output, the cluster ids included."""
    checks = []
    generator = torch.Generator().manual_seed(seed)
    for h, w in shapes:
        x = torch.randn(batch, channels, h, w, generator=generator)
        check = SizeCheck(shape=(h, w))
        try:
            with torch.no_grad():
                ref = wrapper(x)
        except Exception as e:  # the model itself refuses this size
            check.error = f'PyTorch: {type(e).__name__}: {str(e).splitlines()[0][:200]}'
            checks.append(check)
            continue
        try:
            got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        except Exception as e:
            check.error = f'onnxruntime: {str(e).splitlines()[0][:200]}'
            checks.append(check)
            continue
        diff = compare_outputs(ref, got)
        if diff['shape_errors']:
            check.error = 'output shapes: ' + '; '.join(diff['shape_errors'][:2])
        else:
            check.max_abs, check.max_rel, check.assign_agree = diff['max_abs'], diff['max_rel'], diff['assign_agree']
        checks.append(check)
    return checks


def benchmark_onnx(session, wrapper: DeployWrapper, shape: Tuple[int, int], rounds: int = 5,
                   batch: int = 1, channels: int = 3) -> Dict[str, float]:
    """Median milliseconds of onnxruntime and of PyTorch eager (no gradient) on one input, interleaved."""
    x = torch.randn(batch, channels, *shape)
    feed = {session.get_inputs()[0].name: x.numpy()}

    def run_torch():
        with torch.no_grad():
            wrapper(x)

    ms = interleaved_ms(dict(ort=lambda: session.run(None, feed), torch=run_torch), rounds=rounds)
    return ms


def export_and_check(name: str, wrapper: DeployWrapper, shape: Tuple[int, int], other_shapes: Sequence[Tuple[int, int]],
                     out_dir: Optional[Union[str, Path]] = None, dynamic: bool = True, benchmark: bool = False,
                     rounds: int = 5, channels: int = 3) -> ExportResult:
    """Export ``wrapper`` at ``shape``, check onnxruntime at ``shape`` and at ``other_shapes`` (with
    ``dynamic``), and optionally time onnxruntime beside PyTorch. Failures are recorded in the result.

    Args:
        name: the file's stem and the result's name.
        wrapper: the model as a tensor function.
        shape: the export size ``(H, W)``.
        other_shapes: further sizes to check when ``dynamic``.
        out_dir: where to write ``<name>.onnx`` (a temporary folder, deleted, when ``None``).
        dynamic: export with dynamic batch / height / width.
        benchmark: also time onnxruntime and PyTorch at ``shape``.
        rounds: interleaved timing rounds.
        channels: the input channels (3 for images; a layer's width for a layer).
    """
    result = ExportResult(name=name, export_shape=tuple(shape))
    tmp = None
    if out_dir is None:
        tmp = tempfile.TemporaryDirectory()
        out_dir = tmp.name
    path = Path(out_dir) / f'{name}.onnx'
    try:
        example = torch.randn(1, channels, *shape, generator=torch.Generator().manual_seed(0))
        start = time.perf_counter()
        result.outputs = export_onnx(wrapper, example, path, dynamic=dynamic)
        result.export_s = time.perf_counter() - start
        result.path = str(path)
        session = ort_session(path)
        result.checks = check_onnx(session, wrapper, [tuple(shape)] + (list(other_shapes) if dynamic else []),
                                   channels=channels)
        if benchmark:
            ms = benchmark_onnx(session, wrapper, tuple(shape), rounds=rounds, channels=channels)
            result.ort_ms, result.torch_ms = ms['ort'], ms['torch']
    except Exception as e:  # reported in the row: one model failing must not hide the others
        result.error = f'{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ""}'
    finally:
        if tmp is not None:
            result.path = None
            tmp.cleanup()
    return result
