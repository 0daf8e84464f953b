"""Convert official Context Clusters (ma-xu/Context-Cluster) checkpoints to mmcluster's ContextCluster.

Handles both checkpoint generations (see docs / REFERENCE section 1.6):

* generation 1 (March 2023; all COCO / ADE20K checkpoints): ``token_mixer.fc1 -> f``, ``token_mixer.fc2 ->
  proj``, ``token_mixer.fc_v -> v``, Conv2d-shaped MLP weights ``[out, in, 1, 1] -> [out, in]``, buffers
  ``fea_pos`` dropped. These checkpoints were trained with the ``1 + sum a`` denominator: build the model with
  ``norm_by='mask'`` (the converter records this in the output's ``meta``).
* generation 2 (June 2023 re-training): HEAD naming already; ``norm_by='sim'``.

Input: a timm ``model_best.pth.tar`` (``state_dict`` / ``state_dict_ema``), an mmdet/mmseg checkpoint
(``state_dict`` with the ``backbone.`` prefix), a dict with ``model``, or a raw state dict; always read with
``torch.load(weights_only=True)``. The classifier's ``norm.*`` becomes ``norm6.*`` (mmcluster names the output
norm of stage i ``norm{2i}``) and ``head.*`` becomes mmpretrain's ``head.fc.*`` (kept only with
``--with-head``); other non-backbone keys (necks, decode heads) are dropped and listed.

The converted weights are loaded into a ``ContextCluster`` built with ``--arch`` and every missing or
unexpected key is reported; the script exits with status 1 if the load is not exact.

Example::

    python tools/model_converters/coc2mmcluster.py coc_small.pth.tar coc_small_mmcluster.pth --arch small
    python tools/model_converters/coc2mmcluster.py mask_rcnn_coc_small_5.pth out.pth --arch small
"""
import argparse
import json
import re
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

GEN1_RENAMES = (('token_mixer.fc1.', 'token_mixer.f.'), ('token_mixer.fc2.', 'token_mixer.proj.'),
                ('token_mixer.fc_v.', 'token_mixer.v.'))
BACKBONE_PREFIXES = ('patch_embed.', 'network.', 'norm')


def load_checkpoint_dict(path: str, use_ema: bool = False) -> Dict[str, torch.Tensor]:
    """Read a checkpoint file (weights only) and return its state dict."""
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    return pick_state_dict(ckpt, use_ema)


def pick_state_dict(ckpt: dict, use_ema: bool = False) -> Dict[str, torch.Tensor]:
    if not isinstance(ckpt, dict):
        raise TypeError(f'checkpoint must be a dict, got {type(ckpt)}')
    if use_ema:
        if 'state_dict_ema' not in ckpt:
            raise KeyError(f'--ema given but the checkpoint has no state_dict_ema (keys: {sorted(ckpt)[:10]})')
        return ckpt['state_dict_ema']
    for key in ('state_dict', 'model'):
        if key in ckpt and isinstance(ckpt[key], dict):
            return ckpt[key]
    return ckpt  # raw state dict


def convert(state_dict: Dict[str, torch.Tensor],
            with_head: bool = False) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """Official (either generation) -> mmcluster ``ContextCluster`` keys.

    Returns ``(new_state_dict, info)``; ``info`` holds ``generation`` (1 or 2), ``norm_by``, ``out_indices``
    (from the norms present), ``dropped`` (keys not carried over) and ``prefix`` (the stripped prefix).
    """
    # detector / segmentor checkpoints: keep only the backbone.* keys
    prefix = 'backbone.' if any(k.startswith('backbone.') for k in state_dict) else ''
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    dropped: List[str] = []
    generation = 2
    for key, value in state_dict.items():
        name = key
        if prefix:
            if not name.startswith(prefix):
                dropped.append(key)
                continue
            name = name[len(prefix):]
        if name.startswith('head.'):
            if with_head:
                out['head.fc.' + name[len('head.'):]] = value
            else:
                dropped.append(key)
            continue
        if name.endswith('fea_pos'):
            generation = 1
            dropped.append(key)
            continue
        if not name.startswith(BACKBONE_PREFIXES):
            dropped.append(key)
            continue
        for old, new in GEN1_RENAMES:
            if old in name:
                name = name.replace(old, new)
                generation = 1
        if re.search(r'\.mlp\.fc[12]\.weight$', name) and value.dim() == 4:
            if value.shape[2:] != (1, 1):
                raise ValueError(f'{key}: expected a 1x1 conv weight, got {tuple(value.shape)}')
            value = value[:, :, 0, 0]
            generation = 1
        if name.startswith('norm.'):  # classifier's final norm
            name = 'norm6.' + name[len('norm.'):]
        out[name] = value
    norms = sorted({int(m.group(1)) for k in out for m in [re.match(r'norm(\d)\.', k)] if m})
    info = dict(
        generation=generation,
        norm_by='mask' if generation == 1 else 'sim',
        out_indices=tuple(n // 2 for n in norms),
        dropped=dropped,
        prefix=prefix)
    return out, info


def check_load(state_dict: Dict[str, torch.Tensor], model: torch.nn.Module) -> Tuple[List[str], List[str]]:
    """Load into ``model``; returns ``(missing, unexpected)`` (also shape mismatches count as unexpected)."""
    own = model.state_dict()
    bad_shape = [k for k, v in state_dict.items() if k in own and own[k].shape != v.shape]
    loadable = {k: v for k, v in state_dict.items() if k not in bad_shape}
    result = model.load_state_dict(loadable, strict=False)
    unexpected = list(result.unexpected_keys) + [
        f'{k} (shape {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)})' for k in bad_shape]
    missing = [k for k in result.missing_keys if k not in bad_shape]  # mismatches are listed once, above
    return missing, unexpected


def build_backbone(arch, info: dict, proposal: Optional[int] = None):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from mmcluster.models.backbones.context_cluster import ContextCluster
    return ContextCluster(
        arch=arch, out_indices=info['out_indices'] or (3, ), norm_by=info['norm_by'], proposal=proposal,
        init_cfg=None)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official checkpoint')
    parser.add_argument('dst', help='output checkpoint (mmengine format: state_dict + meta)')
    parser.add_argument('--arch', required=True,
                        help="ContextCluster arch name (tiny, tiny2, small, medium, ...) or a JSON dict")
    parser.add_argument('--ema', action='store_true', help='convert state_dict_ema instead of state_dict')
    parser.add_argument('--with-head', action='store_true',
                        help='keep the classifier head as head.fc.* and prefix the backbone with backbone.')
    parser.add_argument('--add-prefix', action='store_true',
                        help='write backbone keys as backbone.* (for loading a whole detector / segmentor)')
    parser.add_argument('--proposal', type=int, default=None,
                        help='centres per side (dense variants 2/5/7); only used for the check model')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    arch = json.loads(args.arch) if args.arch.strip().startswith('{') else args.arch
    src = load_checkpoint_dict(args.src, args.ema)
    new, info = convert(src, with_head=args.with_head)
    backbone = OrderedDict((k, v) for k, v in new.items() if not k.startswith('head.'))
    model = build_backbone(arch, info, args.proposal)
    missing, unexpected = check_load(backbone, model)
    print(f'generation {info["generation"]} checkpoint -> build the model with norm_by={info["norm_by"]!r}, '
          f'out_indices={info["out_indices"]}')
    if info['prefix']:
        print(f'stripped prefix {info["prefix"]!r}')
    if info['dropped']:
        print(f'dropped {len(info["dropped"])} keys: {info["dropped"][:20]}'
              f'{" ..." if len(info["dropped"]) > 20 else ""}')
    print(f'missing keys ({len(missing)}): {missing}')
    print(f'unexpected keys ({len(unexpected)}): {unexpected}')
    if args.with_head or args.add_prefix:
        new = OrderedDict((k if k.startswith('head.') else 'backbone.' + k, v) for k, v in new.items())
    meta = dict(source=str(args.src), generation=info['generation'], norm_by=info['norm_by'],
                out_indices=list(info['out_indices']))
    Path(args.dst).parent.mkdir(parents=True, exist_ok=True)
    torch.save(dict(state_dict=new, meta=meta), args.dst)
    print(f'saved {len(new)} tensors to {args.dst}')
    return 1 if (missing or unexpected) else 0


if __name__ == '__main__':
    sys.exit(main())
