"""Train a model of any of the three toolkits (mmdet, mmseg, mmpretrain) from a config.

Equivalent to the toolkits' own ``tools/train.py`` (and to ``mim train <pkg> CONFIG``), for configs
that name mmcluster modules; the config's ``default_scope`` chooses the toolkit.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--time-budget MIN]
                                 [--cfg-options k=v ...]
    bash tools/dist_train.sh CONFIG NUM_PROCS [...]      # torchrun, launcher `pytorch`
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import mmcluster  # noqa: E402,F401  (compat fixes + registration, also for configs without custom_imports)
from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmcluster.utils import load_config  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or from the latest one in the work dir')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument(
        '--time-budget', type=float, metavar='MINUTES',
        help='stop training after this many minutes (TimeBudgetHook, with a progress bar); '
        'the run then ends as if max_iters were reached (final checkpoint and validation)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value (e.g. train_cfg.max_iters=10)')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_config(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.time_budget is not None:
        cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [
            dict(type='TimeBudgetHook', minutes=args.time_budget)
        ]
        # only the budget ends the run: checkpoint and validate once, at its end
        cfg.train_cfg.max_iters = 10**9
        cfg.train_cfg.val_interval = 10**9
        cfg.default_hooks.checkpoint.interval = 10**9
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv=None) -> None:
    cfg = build_config(parse_args(argv))
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    main()
