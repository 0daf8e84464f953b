"""Utilities shared by the tools, the demo and the tests: config loading and the runner command line
(:mod:`.config`), the safe checkpoint loader (:mod:`.checkpoint`), toy runs (:mod:`.toy_run`) and one-op
measurements in a fresh subprocess (:mod:`.subprocess_measure`; both imported on demand). Toy benchmark runs
are :mod:`mmcluster.benchmark.protocol`'s."""
from .checkpoint import (KeyReport, UnsafeCheckpointError, check_state_dict, load_checkpoint_safely,
                         pick_state_dict, strip_prefix)
from .config import build_runner, load_config, parse_runner_args, runner_config, runner_parser

__all__ = [
    'load_config', 'runner_parser', 'parse_runner_args', 'runner_config', 'build_runner', 'load_checkpoint_safely',
    'pick_state_dict', 'strip_prefix', 'check_state_dict', 'KeyReport', 'UnsafeCheckpointError'
]
