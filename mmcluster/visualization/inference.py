"""Run the model of any config on one image and collect its cluster records.

* :func:`build_model`: the whole model of a config (mmpretrain classifier, mmdet detector, mmseg segmentor),
  under the config's default scope; ``Pretrained`` init_cfgs are dropped (nothing is downloaded): the weights
  come from a checkpoint, or are the modules' own random initialisation (seeded);
* :func:`load_weights`: a whole-model checkpoint, or a backbone checkpoint (e.g. from
  ``tools/model_converters/``), read with the safe loader; missing or mis-shaped weights of the modules that
  run are an error;
* :func:`prepare_inputs`: the image (BGR ``uint8``, as the toolkits' loading transforms give it) through the
  model's own data preprocessor (colour order, mean / std, padding), with the toolkit's data sample;
* :func:`collect_records`: the feature path (``extract_feat``: backbone + neck) when every clustering module
  sits there, else the full ``predict`` path (heads that cluster, e.g. kMaX-DeepLab, ClusterFormer), inside
  :func:`~mmcluster.models.utils.cluster_record.recording_clusters`.
"""
import copy
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from mmcluster.models.utils.cluster_record import ClusterRecord, ClusterRecorder, recording_clusters

MODES = ('auto', 'feat', 'predict')
FEATURE_PATH = ('backbone', 'neck')


def _drop_pretrained(obj: Any) -> Any:
    """A copy of a config value without ``Pretrained`` init_cfgs / ``pretrained`` paths (no downloads)."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if key == 'init_cfg' and _is_pretrained(value):
                out[key] = None
            elif key == 'pretrained' and isinstance(value, str):
                out[key] = None
            else:
                out[key] = _drop_pretrained(value)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_drop_pretrained(v) for v in obj)
    return obj


def _is_pretrained(init_cfg: Any) -> bool:
    if isinstance(init_cfg, dict):
        return init_cfg.get('type') == 'Pretrained'
    if isinstance(init_cfg, (list, tuple)):
        return any(_is_pretrained(c) for c in init_cfg)
    return False


def load_config(config: Any, cfg_options: Optional[dict] = None):
    """A :class:`~mmengine.config.Config` from a path (or a Config), with ``cfg_options`` merged."""
    from mmengine.config import Config
    cfg = config if isinstance(config, Config) else Config.fromfile(str(config))
    if cfg_options:
        cfg = copy.deepcopy(cfg)
        cfg.merge_from_dict(cfg_options)
    return cfg


def build_model(cfg, seed: int = 0) -> nn.Module:
    """The config's model in eval mode, randomly initialised (``seed``) without any download."""
    import mmcluster  # noqa: F401  (registration)
    from mmengine.config import ConfigDict
    from mmengine.registry import MODELS, init_default_scope
    if 'model' not in cfg:
        raise ValueError('the config has no `model`')
    if cfg.get('custom_imports'):
        from mmengine.utils import import_modules_from_strings
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', None) or 'mmengine')
    model_cfg = _drop_pretrained(cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model))
    if cfg.get('data_preprocessor') is not None:  # mmpretrain configs keep it at the top level (as the Runner)
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor.to_dict()
                             if hasattr(cfg.data_preprocessor, 'to_dict') else dict(cfg.data_preprocessor))
    torch.manual_seed(seed)
    model = MODELS.build(ConfigDict(model_cfg))  # some toolkit models call ConfigDict methods on their arguments
    if hasattr(model, 'init_weights'):
        model.init_weights()
    return model.eval()


def recorder_names(model: nn.Module) -> List[str]:
    """Qualified names of the model's :class:`ClusterRecorder` modules."""
    return [name for name, m in model.named_modules() if isinstance(m, ClusterRecorder)]


def choose_mode(model: nn.Module, mode: str = 'auto') -> str:
    """``feat`` when every clustering module is in the backbone or neck, else ``predict`` (for ``auto``)."""
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    if mode != 'auto':
        return mode
    names = recorder_names(model)
    if not names:
        raise ValueError(f'{type(model).__name__} has no clustering module (no ClusterRecorder): nothing to draw')
    on_path = all(n.split('.')[0] in FEATURE_PATH for n in names)
    return 'feat' if on_path and hasattr(model, 'extract_feat') else 'predict'


def load_weights(model: nn.Module, path: str, prefixes: Optional[Sequence[str]] = None,
                 allow_missing: bool = False) -> Dict[str, List[str]]:
    """Load a whole-model or a backbone checkpoint into ``model``.

    Args:
        model: the built model.
        path: checkpoint (mmengine ``state_dict``, a raw state dict, or one under ``model``).
        prefixes: top-level modules whose weights must all be present (default: all of them); keys outside
            them are ignored.
        allow_missing: report missing weights instead of raising.

    Returns:
        ``{'loaded', 'missing', 'unexpected'}`` key lists (model key names).
    """
    from mmcluster.utils.checkpoint import load_checkpoint_safely, pick_state_dict
    state = pick_state_dict(load_checkpoint_safely(path))
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    own = model.state_dict()
    if not any(k in own for k in state) and hasattr(model, 'backbone'):
        backbone_keys = set(model.backbone.state_dict())
        if any(k in backbone_keys for k in state):  # a backbone checkpoint
            state = {f'backbone.{k}': v for k, v in state.items()}
    wanted = [k for k in own if prefixes is None or k.split('.')[0] in prefixes]
    mismatched = [f'{k}: {tuple(state[k].shape)} in the checkpoint, {tuple(own[k].shape)} in the model'
                  for k in wanted if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    missing = [k for k in wanted if k not in state]
    loaded = [k for k in wanted if k in state and tuple(state[k].shape) == tuple(own[k].shape)]
    if mismatched or not loaded or (missing and not allow_missing):
        scope = 'the model' if prefixes is None else f'the modules that run ({", ".join(prefixes)})'
        raise ValueError(f'{path} does not fit {scope}: {len(missing)} missing weights {missing[:8]}, '
                         f'{len(mismatched)} of another shape {mismatched[:4]}'
                         + ('' if loaded else '; nothing matched'))
    model.load_state_dict({k: state[k] for k in loaded}, strict=False)
    unexpected = [k for k in state if k not in own]
    return dict(loaded=loaded, missing=missing, unexpected=unexpected)


def _data_sample(model: nn.Module, image_hw: Tuple[int, int], image_path: Optional[str]):
    """The data sample type of the model's toolkit, with the meta information its predict path reads."""
    toolkit = type(model).__module__.split('.')[0]
    meta = dict(img_shape=image_hw, ori_shape=image_hw, pad_shape=image_hw, scale_factor=(1.0, 1.0),
                img_path=image_path, img_id=0)
    if toolkit == 'mmdet':
        from mmdet.structures import DetDataSample as Sample
    elif toolkit == 'mmseg':
        from mmseg.structures import SegDataSample as Sample
    elif toolkit == 'mmpretrain':
        from mmpretrain.structures import DataSample as Sample
    else:
        from mmengine.structures import BaseDataElement as Sample
    return Sample(metainfo=meta)


def prepare_inputs(model: nn.Module, image_bgr: np.ndarray, image_path: Optional[str] = None):
    """``(inputs [1, 3, H_in, W_in], data_samples)`` through the model's data preprocessor (test mode)."""
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f'expected an [H, W, 3] image, got {image_bgr.shape}')
    img = torch.from_numpy(np.ascontiguousarray(image_bgr.transpose(2, 0, 1)))
    sample = _data_sample(model, tuple(image_bgr.shape[:2]), image_path)
    data = model.data_preprocessor(dict(inputs=[img], data_samples=[sample]), False)
    return data['inputs'], data.get('data_samples')


@torch.no_grad()
def collect_records(model: nn.Module, inputs: torch.Tensor, data_samples=None,
                    mode: str = 'auto') -> Tuple[List[ClusterRecord], str]:
    """Run ``model`` (eval mode) on ``inputs`` and return ``(records, mode used)``."""
    mode = choose_mode(model, mode)
    was_training = model.training
    model.eval()
    try:
        with recording_clusters(model) as records:
            if mode == 'feat':
                model.extract_feat(inputs)
            else:
                model.predict(inputs, data_samples)
    finally:
        model.train(was_training)
    if not records:
        raise ValueError(f'the model recorded no clusters in mode {mode!r} (clustering modules: '
                         f'{recorder_names(model) or "none"}); try --mode predict')
    return list(records), mode
