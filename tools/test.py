"""Evaluate a checkpoint of any of the three toolkits (mmdet, mmseg, mmpretrain) from a config.

Equivalent to the toolkits' own ``tools/test.py`` (and to ``mim test <pkg> CONFIG --checkpoint``).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--show-dir DIR] [--out FILE.pkl]
"""
import argparse
import os.path as osp

from mmengine.config import Config

import mmcluster  # noqa: F401  (compat fixes + registration)
from mmcluster.engine import add_checkpoint_hooks
from mmcluster.utils import build_runner, parse_runner_args, runner_config, runner_parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = runner_parser('Test (and evaluate) a model', checkpoint=True)
    parser.add_argument('--out', help='dump the raw predictions to this pickle file')
    parser.add_argument('--show-dir', help='draw predictions as images into this directory')
    return parse_runner_args(parser, argv)


def enable_drawing(cfg: Config, show_dir: str) -> None:
    """Turn on the toolkit's own visualisation hook so that predictions are written as PNGs."""
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise ValueError('--show-dir needs a `visualization` hook in default_hooks')
    scope = cfg.get('default_scope', 'mmdet')
    if scope == 'mmpretrain':
        hook.update(enable=True, out_dir=show_dir)
    elif scope == 'mmseg':
        hook.update(draw=True, interval=1)
        cfg.visualizer['save_dir'] = show_dir
    else:  # mmdet: relative to the timestamped work dir unless absolute
        hook.update(draw=True, interval=1, test_out_dir=osp.abspath(show_dir))


def build_config(args: argparse.Namespace) -> Config:
    cfg = runner_config(args)
    cfg.load_from = args.checkpoint
    add_checkpoint_hooks(cfg, train=False)  # a checkpoint that matches nothing is an error, not random weights
    if args.show_dir:
        enable_drawing(cfg, args.show_dir)
    if args.out:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl or .pickle file, got {args.out!r}')
        dump = dict(type='DumpResults', out_file_path=args.out)
        evaluators = cfg.test_evaluator
        cfg.test_evaluator = (list(evaluators) if isinstance(evaluators, (list, tuple)) else
                              [evaluators]) + [dump]
    return cfg


def main(argv=None) -> dict:
    return build_runner(build_config(parse_args(argv))).test()


if __name__ == '__main__':
    main()
