"""Export mmcluster models to ONNX and check onnxruntime against PyTorch (features and cluster assignments).

Models: a backbone by class name (``--backbone ClusTR --arch tiny``; ``--backbone all``: the smallest variant of
every registered backbone), or the whole model of a config (an mmpretrain ``ImageClassifier`` with an
mmcluster backbone: the scores; any other model: its ``mode='tensor'`` outputs) with an optional checkpoint.
The graph returns the model's outputs followed by the hard cluster ids of every clustering module.

The check runs onnxruntime and PyTorch on new random inputs (not the export example) at the export size and,
unless ``--static``, at the ``--check-shapes``: a model whose graph holds only at the export size (sizes
computed in Python are frozen by the trace) is reported as ``static only`` and its file is re-exported without
dynamic axes, so that onnxruntime refuses other sizes instead of computing a wrong result.

Examples::

    python tools/deployment/pytorch2onnx.py --backbone all --shape 64 96 --benchmark
    python tools/deployment/pytorch2onnx.py --backbone ContextCluster --arch small --shape 224 224 --out coc.onnx
    python tools/deployment/pytorch2onnx.py --config configs/clustr/clustr-t_1xb32-toy_imagenet.py \\
        --checkpoint work_dirs/clustr/iter_1000.pth --shape 96 96 --out clustr_cls.onnx --benchmark
"""
import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence

import torch

from mmcluster.benchmark.report import fmt_spec, markdown_table
from mmcluster.deployment.models import (DeployWrapper, backbone_classes, backbone_label, build_backbone,
                                         build_config_model, example_data_samples, find_backbone, smallest_variant,
                                         strip_eval_identities)
from mmcluster.deployment.onnx_export import ExportResult, benchmark_onnx, export_and_check, ort_session


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--backbone', help='backbone class name, or "all"')
    source.add_argument('--config', help='config of a whole model (e.g. an mmpretrain classifier)')
    parser.add_argument('--arch', default=None, help='backbone variant (default: the smallest)')
    parser.add_argument('--checkpoint', default=None, help='weights for --config (safe loader)')
    parser.add_argument('--shape', nargs=2, type=int, default=(224, 224), metavar=('H', 'W'), help='export size')
    parser.add_argument('--check-shapes', nargs='*', type=int, default=None, metavar='H W',
                        help='other sizes to check, as H W pairs (default: H+16 W-24 and H-32 W+8)')
    parser.add_argument('--static', action='store_true', help='export without dynamic axes')
    parser.add_argument('--out', default=None, help='the .onnx file (one model) or folder (--backbone all)')
    parser.add_argument('--benchmark', action='store_true', help='onnxruntime vs PyTorch CPU latency (one thread)')
    parser.add_argument('--rounds', type=int, default=5, help='interleaved timing rounds')
    return parser.parse_args(argv)


def other_shapes(args: argparse.Namespace) -> List[tuple]:
    if args.check_shapes is None:
        h, w = args.shape
        return [(h + 16, max(w - 24, 32)), (max(h - 32, 32), w + 8)]
    if len(args.check_shapes) % 2:
        raise SystemExit('--check-shapes takes H W pairs')
    return [tuple(args.check_shapes[i:i + 2]) for i in range(0, len(args.check_shapes), 2)]


def export_one(name: str, model: torch.nn.Module, args: argparse.Namespace, out: Path) -> ExportResult:
    """Export with dynamic axes and check; re-export static when the graph does not hold at other sizes (the
    checks at other sizes stay in the result: they say why); then time onnxruntime beside PyTorch."""
    strip_eval_identities(model)
    shape = tuple(args.shape)
    wrapper = DeployWrapper(model, example_data_samples(model, shape))
    result = export_and_check(name, wrapper, shape, other_shapes(args), out_dir=out, dynamic=not args.static)
    if not args.static and result.error is None and result.dynamic_ok is False:
        static = export_and_check(name, wrapper, shape, [], out_dir=out, dynamic=False)
        result.error, result.path = static.error, static.path
        result.checks = static.checks + [c for c in result.checks if c.shape != shape]
    if args.benchmark and result.error is None and result.export_size_ok:
        ms = benchmark_onnx(ort_session(result.path), wrapper, shape, rounds=args.rounds)
        result.ort_ms, result.torch_ms = ms['ort'], ms['torch']
    return result


def table(results: List[ExportResult]) -> str:
    """The Markdown table of ``results`` (the one in docs/deployment.md)."""
    rows = []
    for r in results:
        same = [c for c in r.checks if c.shape == r.export_shape]
        if r.error:
            ok = 'error: ' + r.error
        else:
            ok = 'yes' if r.export_size_ok else 'NO: ' + '; '.join(c.error or f'rel {c.max_rel:.1e}, agree '
                                                                      f'{c.assign_agree}' for c in same)
        other = [c for c in r.checks if c.shape != r.export_shape]
        if not other:
            dyn = '-'
        elif all(c.ok() for c in other):
            dyn = 'yes (' + ', '.join(f'{h}x{w}' for h, w in (c.shape for c in other)) + ')'
        else:
            bad = next(c for c in other if not c.ok())
            why = bad.error or f'rel diff {bad.max_rel:.1e}, assign agree {bad.assign_agree}'
            dyn = f'no, static only ({bad.shape[0]}x{bad.shape[1]}: {why[:90]})'
        rel = max((c.max_rel for c in same if c.max_rel is not None), default=None)
        agree = min((c.assign_agree for c in same if c.assign_agree is not None), default=None)
        rows.append([r.name, ok, fmt_spec(rel, '.1e'), fmt_spec(agree, '.3f'), dyn, fmt_spec(r.export_s),
                     fmt_spec(r.ort_ms), fmt_spec(r.torch_ms)])
    return markdown_table(['model', 'onnx ok (export size)', 'max rel diff', 'assign agree', 'other sizes',
                           'export s', 'ort ms', 'torch ms'], rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    logging.getLogger('torch.onnx').setLevel(logging.ERROR)
    jobs = []
    if args.config:
        jobs.append((Path(args.config).stem, lambda: build_config_model(args.config, args.checkpoint)))
    else:
        classes = backbone_classes() if args.backbone == 'all' else [find_backbone(args.backbone)]
        for cls in classes:
            variant = args.arch if args.arch is not None and len(classes) == 1 else smallest_variant(cls)
            if isinstance(variant, str) and variant.isdigit():
                variant = int(variant)  # HCResNet depths
            jobs.append((backbone_label(cls, variant), lambda cls=cls, variant=variant: build_backbone(cls, variant)))
    keep = args.out is not None
    tmp = None if keep else tempfile.TemporaryDirectory()
    results = []
    for name, make in jobs:
        if keep and len(jobs) == 1 and args.out.endswith('.onnx'):
            out_dir = Path(args.out).parent
        else:
            out_dir = Path(args.out) if keep else Path(tmp.name)
        out_dir.mkdir(parents=True, exist_ok=True)
        print(f'[pytorch2onnx] {name} ...', file=sys.stderr, flush=True)
        try:
            result = export_one(name, make(), args, out_dir)
        except Exception as e:  # a model that cannot be built is a row, not a crash
            result = ExportResult(name=name, error=f'build: {type(e).__name__}: {e}')
        if keep and len(jobs) == 1 and args.out.endswith('.onnx') and result.path:
            Path(result.path).replace(args.out)
            result.path = args.out
        results.append(result)
        print(f'[pytorch2onnx] {name}: {result.error or "exported"}' + (f' -> {result.path}' if keep else ''),
              file=sys.stderr, flush=True)
    print(f'torch {torch.__version__} TorchScript exporter (opset 17), onnxruntime CPU, one thread; export size '
          f'{args.shape[0]}x{args.shape[1]}, batch 1; checks on new random inputs'
          + (f'; latency: median of {args.rounds} interleaved rounds' if args.benchmark else '') + '\n')
    print(table(results))
    if tmp is not None:
        tmp.cleanup()
    return 0 if all(r.error is None and r.export_size_ok for r in results) else 1


if __name__ == '__main__':
    sys.exit(main())
