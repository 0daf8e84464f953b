from .checkpoint import (KeyReport, UnsafeCheckpointError, check_state_dict, load_checkpoint_safely,
                         pick_state_dict, strip_prefix)
from .config import load_config

__all__ = [
    'load_config', 'load_checkpoint_safely', 'pick_state_dict', 'strip_prefix', 'check_state_dict', 'KeyReport',
    'UnsafeCheckpointError'
]
