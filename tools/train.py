"""Train a model of any of the three toolkits (mmdet, mmseg, mmpretrain) from a config.

Equivalent to the toolkits' own ``tools/train.py`` (and to ``mim train <pkg> CONFIG``), for configs
that name mmcluster modules; the config's ``default_scope`` chooses the toolkit.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--time-budget MIN]
                                 [--cfg-options k=v ...]
    bash tools/dist_train.sh CONFIG NUM_PROCS [...]      # torchrun, launcher `pytorch`
"""
import argparse

from mmengine.config import Config

import mmcluster  # noqa: F401  (compat fixes + registration, also for configs without custom_imports)
from mmcluster.engine import add_checkpoint_hooks
from mmcluster.utils import build_runner, parse_runner_args, runner_config, runner_parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = runner_parser('Train a model')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or from the latest one in the work dir')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument(
        '--time-budget', type=float, metavar='MINUTES',
        help='stop training after this many minutes (TimeBudgetHook, with a progress bar); '
        'the run then ends as if max_iters were reached (final checkpoint and validation)')
    return parse_runner_args(parser, argv)


def build_config(args: argparse.Namespace) -> Config:
    cfg = runner_config(args)
    add_checkpoint_hooks(cfg)  # strict resume, exact resume (torch RNG state), no load_from that loads nothing
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.time_budget is not None:
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='TimeBudgetHook', minutes=args.time_budget)
        ]
        # the budget ends the run (or an explicit --cfg-options train_cfg.max_iters, whichever comes
        # first): checkpoint and validate once, at the end
        if 'train_cfg.max_iters' not in (args.cfg_options or {}):
            cfg.train_cfg.max_iters = 10**9
        cfg.train_cfg.val_interval = cfg.train_cfg.max_iters
        cfg.default_hooks.checkpoint.interval = cfg.train_cfg.max_iters
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv=None) -> None:
    build_runner(build_config(parse_args(argv))).train()


if __name__ == '__main__':
    main()
