"""Parameters and FLOPs of a model from any mmpretrain / mmdet / mmseg config (also mmcluster models).

    python tools/get_flops.py CONFIG [--shape H W] [--backbone-only] [--show-table] [--json OUT]
                              [--in-channels 3] [--cfg-options k=v ...]

Counting is mmengine's jit-trace counter (:class:`mmengine.analysis.FlopAnalyzer`, fvcore's rules), with
its convention: **one multiply-add counts as one FLOP** (so "FLOPs" here are MACs, the number papers
report as GFLOPs), element-wise operations (activations, additions, sigmoid, normalisation of vectors,
softmax) are not counted, a normalisation layer counts 4-5 per element, a pooling 1 per input element.

mmengine has no rules for several operators that clustering models use, so they would count as zero;
this tool registers them (:func:`extra_handles`):

* ``aten::matmul`` is re-registered: mmengine's rule multiplies the *first* operand's numel by the last
  dimension of the second and so misses broadcast batch dimensions of the second operand (Context
  Clusters computes its centres as ``pool[R, M, L] @ points[B*E, R, L, 2d]``);
* ``aten::baddbmm`` / ``aten::baddbmm_`` / ``aten::addbmm``: as ``bmm`` (squared distances in DPC-kNN);
* ``aten::scaled_dot_product_attention``: ``B * L * S * (E + Ev)`` (scores and weighted values;
  softmax not counted);
* ``aten::cdist`` / ``aten::_cdist_forward``: ``B * P * R * M`` (one MAC per coordinate pair);
* ``aten::topk``: one comparison per input element (a lower bound);
* ``aten::index_add`` (``_``), ``aten::scatter_add`` (``_``), ``aten::scatter_reduce`` (``_``): one
  operation per source element;
* ``aten::adaptive_avg_pool1d/3d``, ``aten::adaptive_max_pool1d/2d/3d``, ``aten::avg_pool1d/2d``,
  ``aten::max_pool1d/2d``: one operation per input element (as mmengine's ``adaptive_avg_pool2d``).

The operators that stay uncounted are listed after the total, with how often they ran.

What is traced: ``--backbone-only`` -> ``model.backbone(x)``; otherwise the whole model in
``mode='tensor'`` (mmpretrain: logits; mmseg: the decode head's logits; mmdet: the raw head outputs, for
two-stage detectors with the proposals of the RPN, so the RoI-head count depends on how many proposals
survive, as in mmdet's own tool). The data preprocessor is skipped (the input is a random normalised
image). ``--shape`` defaults to 224 x 224 (classification, backbones), 800 x 1280 (mmdet) or 512 x 512
(mmseg). Nothing is downloaded: the model is built but its ``init_weights`` is not run.
"""
import argparse
import json
import math
import warnings
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.jit_handles import get_shape
from mmengine.config import Config, DictAction

import mmcluster  # noqa: F401  (compat fixes + registration)

DEFAULT_SHAPES = {'mmdet': (800, 1280), 'mmseg': (512, 512)}


# ----------------------------------------------------------------------------------------------- handles
def _prod(values: Sequence[int]) -> int:
    return int(math.prod(int(v) for v in values))


def _broadcast_batch(a: Sequence[int], b: Sequence[int]) -> List[int]:
    n = max(len(a), len(b))
    a = [1] * (n - len(a)) + list(a)
    b = [1] * (n - len(b)) + list(b)
    return [max(x, y) for x, y in zip(a, b)]


def matmul_flop(inputs: List[Any], outputs: List[Any]) -> Counter:
    """``torch.matmul`` with broadcasting: ``prod(batch) * n * k * m`` (1-D operands as in torch)."""
    a, b = get_shape(inputs[0]), get_shape(inputs[1])
    if len(a) == 1 and len(b) == 1:
        return Counter({'matmul': a[0]})
    if len(a) == 1:
        a = [1, a[0]]
    if len(b) == 1:
        b = [b[0], 1]
    if a[-1] != b[-2]:
        raise ValueError(f'matmul shapes do not match: {a} @ {b}')
    batch = _broadcast_batch(a[:-2], b[:-2])
    return Counter({'matmul': _prod(batch) * a[-2] * a[-1] * b[-1]})


def bmm_like_flop(first: int, name: str):
    """``(b)addbmm``-style ops: the product of operands ``first`` and ``first + 1``, ``[B, n, k] @ [B, k, m]``."""

    def handle(inputs: List[Any], outputs: List[Any]) -> Counter:
        a, b = get_shape(inputs[first]), get_shape(inputs[first + 1])
        return Counter({name: _prod(a) * b[-1]})

    return handle


def sdpa_flop(inputs: List[Any], outputs: List[Any]) -> Counter:
    """``scaled_dot_product_attention(q [.., L, E], k [.., S, E], v [.., S, Ev])``:
    ``batch * L * S * (E + Ev)``."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch = _broadcast_batch(_broadcast_batch(q[:-2], k[:-2]), v[:-2])
    return Counter({'scaled_dot_product_attention': _prod(batch) * q[-2] * k[-2] * (q[-1] + v[-1])})


def cdist_flop(inputs: List[Any], outputs: List[Any]) -> Counter:
    """``cdist(x1 [.., P, M], x2 [.., R, M])``: ``batch * P * R * M``."""
    a, b = get_shape(inputs[0]), get_shape(inputs[1])
    batch = _broadcast_batch(a[:-2], b[:-2])
    return Counter({'cdist': _prod(batch) * a[-2] * b[-2] * a[-1]})


def numel_flop(index: int, name: str):
    """One operation per element of operand ``index``."""

    def handle(inputs: List[Any], outputs: List[Any]) -> Counter:
        return Counter({name: _prod(get_shape(inputs[index]))})

    return handle


def extra_handles() -> Dict[str, Any]:
    """Rules for the operators mmengine does not count (or, for matmul, under-counts)."""
    handles = {
        'aten::matmul': matmul_flop,
        'aten::baddbmm': bmm_like_flop(1, 'baddbmm'),
        'aten::baddbmm_': bmm_like_flop(1, 'baddbmm'),
        'aten::addbmm': bmm_like_flop(1, 'addbmm'),
        'aten::addbmm_': bmm_like_flop(1, 'addbmm'),
        'aten::scaled_dot_product_attention': sdpa_flop,
        'aten::cdist': cdist_flop,
        'aten::_cdist_forward': cdist_flop,
        'aten::topk': numel_flop(0, 'topk'),
    }
    for op in ('index_add', 'scatter_add', 'scatter_reduce'):
        # (self, dim, index, source/src, ...): count the source elements
        handles[f'aten::{op}'] = numel_flop(3, op)
        handles[f'aten::{op}_'] = numel_flop(3, op)
    for op in ('adaptive_avg_pool1d', 'adaptive_avg_pool3d', 'adaptive_max_pool1d', 'adaptive_max_pool2d',
               'adaptive_max_pool3d', 'avg_pool1d', 'avg_pool2d', 'max_pool1d', 'max_pool2d'):
        handles[f'aten::{op}'] = numel_flop(0, op)
    return handles


def make_analyzer(model: nn.Module, inputs) -> FlopAnalyzer:
    """mmengine's FlopAnalyzer with :func:`extra_handles` registered and its warnings silenced."""
    analyzer = FlopAnalyzer(model, inputs if isinstance(inputs, tuple) else (inputs, ))
    for name, handle in extra_handles().items():
        analyzer.set_op_handle(name, handle)
    return analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings('none')


def _evaluate(analyzer: FlopAnalyzer) -> Dict[str, Any]:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return dict(flops=int(analyzer.total()), by_operator=dict(analyzer.by_operator()),
                    uncounted=dict(analyzer.unsupported_ops()))


def count_flops(model: nn.Module, inputs) -> Dict[str, Any]:
    """``{'flops', 'by_operator', 'uncounted'}`` of ``model(*inputs)`` (any nn.Module, no config)."""
    return _evaluate(make_analyzer(model, inputs))


# ----------------------------------------------------------------------------------------------- model
class _TensorForward(nn.Module):
    """Calls a toolkit model in ``mode='tensor'`` with fixed data samples (what the tracer sees)."""

    def __init__(self, model: nn.Module, data_samples) -> None:
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs: torch.Tensor):
        return self.model(inputs, self.data_samples, mode='tensor')


def _det_data_samples(height: int, width: int) -> list:
    from mmdet.structures import DetDataSample
    shape = (height, width)
    return [DetDataSample(metainfo=dict(img_id=0, img_shape=shape, ori_shape=shape, pad_shape=shape,
                                        batch_input_shape=shape, scale_factor=(1., 1.)))]


def build_model(cfg: Config, backbone_only: bool = False) -> nn.Module:
    """Build ``cfg.model`` (or its backbone) with the toolkit registry of the config's default scope."""
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(cfg.get('default_scope', 'mmengine'))
    if backbone_only:
        if 'backbone' not in cfg.model:
            raise KeyError('--backbone-only: the config has no model.backbone')
        return MODELS.build(cfg.model.backbone)
    return MODELS.build(cfg.model)


def analyse(config, shape: Optional[Sequence[int]] = None, backbone_only: bool = False,
            cfg_options: Optional[dict] = None, show_table: bool = False,
            in_channels: int = 3) -> Dict[str, Any]:
    """Params and FLOPs (MACs) of a config's model; see the module docstring.

    Returns a dict: ``params``, ``flops``, ``by_operator`` (flops per op), ``uncounted`` (op -> calls),
    ``shape`` (H, W), ``scope``, ``model`` (class name) and, with ``show_table``, ``table``.
    """
    cfg = config if isinstance(config, Config) else Config.fromfile(str(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scope = cfg.get('default_scope', 'mmengine')
    if shape is None:
        shape = (224, 224) if backbone_only else DEFAULT_SHAPES.get(scope, (224, 224))
    if len(shape) == 1:
        shape = (shape[0], shape[0])
    height, width = (int(s) for s in shape)
    model = build_model(cfg, backbone_only)
    model.eval()  # not chained: mmdet's and mmseg's ResNet.train return None
    inputs = torch.randn(1, in_channels, height, width)
    traced: nn.Module = model
    if not backbone_only and 'mode' in _forward_params(model):
        traced = _TensorForward(model, _det_data_samples(height, width) if scope == 'mmdet' else None)
    analyzer = make_analyzer(traced, inputs)
    result = dict(_evaluate(analyzer), params=int(parameter_count(model)['']), shape=(height, width),
                  in_channels=in_channels, scope=scope, model=type(model).__name__)
    if show_table:
        from mmengine.analysis.print_helper import complexity_stats_table
        result['table'] = complexity_stats_table(flops=analyzer, show_param_shapes=False)
    return result


def _forward_params(model: nn.Module):
    import inspect
    try:
        return inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return {}


def _fmt(n: float) -> str:
    for unit, div in (('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if abs(n) >= div:
            return f'{n / div:.3f} {unit}'
    return f'{n:.0f}'


def format_result(config: str, r: Dict[str, Any], backbone_only: bool) -> str:
    h, w = r['shape']
    what = 'backbone of ' if backbone_only else ''
    ops = ', '.join(f'{k} {_fmt(v)}' for k, v in sorted(r['by_operator'].items(), key=lambda kv: -kv[1]))
    unc = ', '.join(f'{k} x{v}' for k, v in sorted(r['uncounted'].items(), key=lambda kv: -kv[1]))
    lines = [
        f'config: {config} ({what}{r["model"]}, scope {r["scope"]})',
        f'input:  1 x {r.get("in_channels", 3)} x {h} x {w}',
        f'params: {r["params"] / 1e6:.3f} M ({r["params"]:,}; / 2^20 = {r["params"] / 2**20:.2f}, the '
        f'"M" of some papers)',
        f'FLOPs:  {r["flops"] / 1e9:.3f} G (multiply-adds; element-wise ops not counted)',
        f'  by operator: {ops}',
        f'  not counted (element-wise / data movement, calls): {unc or "-"}',
    ]
    if 'table' in r:
        lines.append(r['table'])
    return '\n'.join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Params and FLOPs (multiply-adds) of a config\'s model')
    parser.add_argument('config', help='config file')
    parser.add_argument('--shape', type=int, nargs='+', default=None,
                        help='input H W (or one size); default 224 224, mmdet 800 1280, mmseg 512 512')
    parser.add_argument('--backbone-only', action='store_true', help='count model.backbone only')
    parser.add_argument('--in-channels', type=int, default=3, help='image channels of the input')
    parser.add_argument('--show-table', action='store_true', help='print the per-module table')
    parser.add_argument('--json', help='also write the numbers to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    args = parser.parse_args(argv)
    if args.shape is not None and len(args.shape) not in (1, 2):
        parser.error('--shape takes H W or one size')
    return args


def main(argv=None) -> Dict[str, Any]:
    args = parse_args(argv)
    result = analyse(args.config, args.shape, args.backbone_only, args.cfg_options, args.show_table,
                     args.in_channels)
    print(format_result(args.config, result, args.backbone_only))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({k: v for k, v in result.items() if k != 'table'}, f, indent=2)
    return result


if __name__ == '__main__':
    main()
