"""Config loading and the command-line set-up shared by tools/train.py, tools/test.py and the demo."""
import argparse
import os
import os.path as osp
from typing import Optional, Sequence

from mmengine.config import Config, DictAction


def load_config(path: str, cfg_options: Optional[dict] = None, work_dir: Optional[str] = None,
                launcher: str = 'none') -> Config:
    """Read a config, apply ``--cfg-options`` and choose the work dir as the toolkits' tools do.

    Args:
        path: config file.
        cfg_options: ``key=value`` overrides (``DictAction`` output).
        work_dir: explicit work dir; else the config's, else ``./work_dirs/<config name>``.
        launcher: distributed launcher name (``none``, ``pytorch``, ``slurm``, ``mpi``).
    """
    cfg = Config.fromfile(path)
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(path))[0])
    return cfg


def runner_parser(description: str, checkpoint: bool = False) -> argparse.ArgumentParser:
    """The arguments every runner tool has, as in the toolkits' ``tools/train.py`` / ``tools/test.py``.

    ``config`` (and ``checkpoint`` when asked for), ``--work-dir``, ``--cfg-options``, ``--launcher`` and
    ``--local_rank``; the tool adds its own.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('config', help='config file path')
    if checkpoint:
        parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs, checkpoints and metrics')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings in the config, key=value (e.g. train_cfg.max_iters=10)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser


def parse_runner_args(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse, and export ``LOCAL_RANK`` for launchers that pass ``--local_rank`` only."""
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def runner_config(args: argparse.Namespace) -> Config:
    """:func:`load_config` from the arguments of :func:`runner_parser`."""
    return load_config(args.config, args.cfg_options, args.work_dir, args.launcher)


def build_runner(cfg: Config):
    """The Runner of ``cfg`` (a custom ``runner_type`` through the registry)."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
