"""torch.compile check of every registered backbone and of the toy configs' whole models (their heads).

For each model: the graph breaks (``torch._dynamo.explain``, grouped by cause and mmcluster function), the
compiled outputs against eager (features and cluster assignments), eager vs compiled latency (one thread,
median of interleaved rounds) and the compile time. One thread is used for everything.

Examples::

    python tools/deployment/compile_check.py                          # every backbone (smallest variant)
    python tools/deployment/compile_check.py --backbones ClusTR --shape 224 224
    python tools/deployment/compile_check.py --backbones ContextCluster --shape 224 224 --freezing --no-assignments
    python tools/deployment/compile_check.py --backbones ClusTR --freezing --mode max-autotune-no-cudagraphs
    python tools/deployment/compile_check.py --configs configs/hcformer/hcformer_r18_1xb8-toy_ade20k-256x256.py
    python tools/deployment/compile_check.py --toy-configs --backend aot_eager   # every head, tracing only
    python tools/deployment/compile_check.py --train                  # training steps, at two input sizes

``--train`` compiles each backbone's training step (forward + backward) at ``--shape`` and then at ``--shape2``,
with static sizes (as mmengine's ``Runner`` with ``compile=dict(dynamic=False)``; ``--dynamic``: torch's default
``dynamic=None``, i.e. ``compile=True``), and compares outputs and every parameter's gradient with eager.
"""
import argparse
import json
import logging
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import torch

from mmcluster.benchmark.report import fmt_spec, markdown_table
from mmcluster.deployment.compile_check import (COMPILE_MODES, KNOWN_BREAKS, CompileResult, compile_check,
                                                 compile_train_check, torch_compile_mode)
from mmcluster.deployment.models import (DeployWrapper, backbone_classes, backbone_label, build_backbone,
                                         build_config_model, example_data_samples, find_backbone, smallest_variant,
                                         toy_configs)

REPO = Path(__file__).resolve().parents[2]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--backbones', nargs='*', default=None,
                        help='backbone class names, or "all" (the default, unless --configs / --toy-configs are given)')
    parser.add_argument('--configs', nargs='*', default=[], help='configs whose whole model to compile')
    parser.add_argument('--toy-configs', action='store_true', help='also every configs/<family>/*toy*.py')
    parser.add_argument('--shape', nargs=2, type=int, default=(64, 96), metavar=('H', 'W'), help='input size')
    parser.add_argument('--backend', default='inductor', help='torch.compile backend (inductor, aot_eager, eager)')
    parser.add_argument('--rounds', type=int, default=5, help='interleaved timing rounds')
    parser.add_argument('--no-timing', action='store_true', help='only check compile + equality')
    parser.add_argument('--freezing', action='store_true',
                        help="inductor's inference mode (torch._inductor.config.freezing: weights as constants, "
                        'pre-packed for oneDNN)')
    parser.add_argument('--mode', choices=COMPILE_MODES, default='default',
                        help="torch.compile's mode (max-autotune: inductor also benchmarks its own GEMM kernels; "
                        'longer compiles)')
    parser.add_argument('--no-assignments', action='store_true',
                        help='compile the plain model (no cluster ids among the outputs; recording them adds graph '
                        'breaks): the inference a deployed model runs')
    parser.add_argument('--train', action='store_true',
                        help="compile each backbone's training step (forward + backward) and compare outputs and "
                        'gradients with eager')
    parser.add_argument('--dynamic', action='store_true',
                        help="with --train: torch.compile's default dynamic=None (mmengine's compile=True) instead of "
                        'static sizes')
    parser.add_argument('--shape2', nargs=2, type=int, default=(80, 112), metavar=('H', 'W'),
                        help='with --train: the second input size (compiled again with static sizes; with --dynamic '
                        'the graphs recompiled for symbolic sizes)')
    parser.add_argument('--json', default=None, help='also write the rows to this JSON file')
    args = parser.parse_args(argv)
    if args.train and (args.configs or args.toy_configs):
        parser.error('--train checks backbones (their training step needs no data samples); '
                     'drop --configs / --toy-configs')
    if args.dynamic and not args.train:
        parser.error('--dynamic is an option of --train')
    if args.train and (args.freezing or args.no_assignments):
        parser.error('--freezing and --no-assignments are inference options; drop them with --train')
    return args


def table(results: List[CompileResult]) -> str:
    """The Markdown table of ``results`` (the one in docs/deployment.md)."""
    rows = []
    train = any(r.grad_rel is not None for r in results)
    for r in results:
        ok = 'error: ' + r.error if r.error else ('yes' if r.outputs_equal else 'outputs differ')
        speed = None if not (r.eager_ms and r.compiled_ms) else r.eager_ms / r.compiled_ms
        graphs = '-' if r.graphs is None else f'{r.graphs} / {r.num_breaks}'
        rows.append([r.name, r.backend, ok, graphs, fmt_spec(r.eager_ms), fmt_spec(r.compiled_ms),
                     fmt_spec(speed, '.2f'), fmt_spec(r.compile_s), fmt_spec(r.max_rel, '.1e'),
                     'records lost' if r.records_lost else fmt_spec(r.assign_agree, '.3f')]
                    + ([fmt_spec(r.grad_rel, '.1e')] if train else []))
    return markdown_table(['model', 'backend', 'compiles, equal', 'graphs / breaks', 'eager ms', 'compiled ms',
                           'speed-up', 'compile s', 'max rel diff', 'assign agree']
                          + (['max rel grad diff'] if train else []), rows)


def break_list(results: List[CompileResult]) -> str:
    """Every cause of graph breaks, with the models it appears in and why it stays."""
    causes = {}
    for r in results:
        for b in r.breaks:
            causes.setdefault(b.where, dict(reason=b.reason, models=[]))['models'].append(f'{r.name} x{b.count}')
    lines = []
    for where, info in sorted(causes.items()):
        why = KNOWN_BREAKS.get(where, 'NEW (not in KNOWN_BREAKS): fix it or document it')
        label = f'mmcluster/{where[0]}' if '/' in where[0] else where[0]  # else a toolkit's file
        lines.append(f'- {label}:{where[1]} — {info["reason"]}\n    in: {", ".join(info["models"])}\n'
                     f'    why: {why}')
    return '\n'.join(lines) or '- none'


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    torch._logging.set_logs(dynamo=logging.ERROR)  # the breaks are reported in the table, not as warnings
    shape = tuple(args.shape)
    x = torch.randn(1, 3, *shape, generator=torch.Generator().manual_seed(0))
    jobs = []
    names = args.backbones
    if names is None:  # every backbone, unless only configs were asked for
        names = [] if (args.configs or args.toy_configs) else ['all']
    classes = backbone_classes() if 'all' in names else [find_backbone(n) for n in names]
    for cls in classes:
        variant = smallest_variant(cls)
        jobs.append((backbone_label(cls, variant), lambda cls=cls, variant=variant: build_backbone(cls, variant)))
    configs = [Path(c) for c in args.configs] + (toy_configs(REPO) if args.toy_configs else [])
    for config in configs:
        jobs.append((config.stem, lambda config=config: build_config_model(config)))
    x2 = torch.randn(1, 3, *args.shape2, generator=torch.Generator().manual_seed(1))  # --train's second size
    results = []
    for name, make in jobs:
        print(f'[compile_check] {name} ...', file=sys.stderr, flush=True)
        try:
            model = make()
            if not args.train:
                samples = example_data_samples(model, shape)
                wrapper = DeployWrapper(model, samples, assignments=not args.no_assignments)
        except Exception as e:  # a model that cannot be built is a row, not a crash
            results.append(CompileResult(name=name, backend=args.backend, error=f'build: {type(e).__name__}: {e}'))
            continue
        if args.train:
            result = compile_train_check(name, model, [x, x2], backend=args.backend, rounds=args.rounds,
                                         timing=not args.no_timing, mode=torch_compile_mode(args.mode),
                                         dynamic=None if args.dynamic else False)
        else:
            result = compile_check(name, wrapper, x, backend=args.backend, rounds=args.rounds,
                                   timing=not args.no_timing, freezing=args.freezing,
                                   mode=torch_compile_mode(args.mode))
        results.append(result)
        print(f'[compile_check] {name}: {result.error or "ok"}', file=sys.stderr, flush=True)
    sizes = f'1x3x{shape[0]}x{shape[1]}' + (f' then 1x3x{args.shape2[0]}x{args.shape2[1]}' if args.train else '')
    print(f'torch {torch.__version__}, input {sizes}, one thread, backend {args.backend}, '
          f'{"training step, " if args.train else ""}median of {args.rounds} interleaved rounds\n')
    print(table(results))
    print('\nGraph breaks (cause, where, models, why it stays):')
    print(break_list(results))
    if args.json:
        Path(args.json).write_text(json.dumps([dict(vars(r), breaks=[str(b) for b in r.breaks]) for r in results],
                                              indent=1))
    return 0 if all(r.error is None and r.outputs_equal for r in results) else 1


if __name__ == '__main__':
    sys.exit(main())
