"""Config loading shared by tools/train.py, tools/test.py and the demo."""
import os.path as osp
from typing import Optional

from mmengine.config import Config


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
