"""Convert official Context Clusters (github.com/ma-xu/Context-Cluster) checkpoints to mmcluster's ContextCluster.

Reads, without running any pickled code (``mmcluster.utils.checkpoint.load_checkpoint_safely``):

* timm ``model_best.pth.tar`` / ``checkpoint-*.pth.tar`` files of the ImageNet models (``state_dict``,
  ``state_dict_ema``, ``optimizer``, ``args`` namespace, ...; ``--ema`` takes the EMA weights);
* mmdet 2.x / mmseg 0.x files of the COCO / ADE20K models (``meta``, ``state_dict`` with ``backbone.`` keys;
  the neck and heads are dropped and listed);
* a dict with ``model``, or a raw state dict.

Key layouts (``docs/context_cluster.md``, "Official checkpoints"): the first release generation names the
token mixer's convolutions ``fc1`` / ``fc2`` / ``fc_v`` (now ``f`` / ``proj`` / ``v``), stores the MLP weights
as 1x1 convolutions ``[out, in, 1, 1]`` and carries ``fea_pos`` buffers; those are renamed, squeezed and
dropped. The classifier's ``norm.*`` becomes ``norm6.*`` and ``head.*`` mmpretrain's ``head.fc.*``
(``--with-head``).

Which aggregation (``norm_by``) the weights were trained with: the official code divided by ``1 + sum a``
(``'mask'``) until 2023-05-31 and by ``1 + sum s^`` (``'sim'``, paper Eq. 1) since. Generation-1 key names,
an mmcv ``meta['time']`` or the ``meta['norm_by']`` of an mmcluster file decide it; a file with current key
names and no date (every timm file) can be either, and then the converter says so and needs
``--norm-by sim|mask`` (the re-trained release of June 2023 is ``sim``). The choice is written into the
output's ``meta['norm_by']``; ``ContextCluster(norm_by=None, init_cfg=dict(type='Pretrained',
checkpoint=OUT))`` applies it when the model is built.

The converted weights are loaded into a ``ContextCluster`` built with ``--arch``; missing, unexpected and
shape-mismatched keys are listed and the exit status is 1 unless the match is exact (2 for a refused input or
an undecidable ``norm_by``).

Example::

    python tools/model_converters/coc2mmcluster.py coc_small.pth.tar coc_small_mmcluster.pth --arch small \\
        --norm-by sim [--ema]
    python tools/model_converters/coc2mmcluster.py mask_rcnn_coc_small_5.pth out.pth --arch small --proposal 5
"""
import argparse
import re
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from mmcluster.utils.checkpoint import (arch_arg, check_state_dict, load_source, print_dropped, save_converted,
                                        strip_prefix)

GEN1_RENAMES = (('token_mixer.fc1.', 'token_mixer.f.'), ('token_mixer.fc2.', 'token_mixer.proj.'),
                ('token_mixer.fc_v.', 'token_mixer.v.'))
BACKBONE_PREFIXES = ('patch_embed.', 'network.', 'norm')
NORM_BY = ('sim', 'mask')
FIX_DATE = (2023, 5, 31)  # official commit "fix bug mask.sum to sim.sum"


def convert(state_dict: Dict[str, torch.Tensor],
            with_head: bool = False) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """Official keys (either layout) -> mmcluster ``ContextCluster`` keys.

    Returns ``(new_state_dict, info)``: ``info['layout']`` is ``'generation-1'`` or ``'current'``,
    ``out_indices`` (from the output norms present), ``dropped`` (keys not carried over) and ``prefix``.
    """
    prefix = ''
    if any(k.startswith('backbone.') for k in state_dict):  # detector / segmentor: keep the backbone
        prefix = 'backbone.'
        state_dict, dropped = strip_prefix(state_dict, prefix)
    else:
        dropped = []
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    gen1 = False
    for key, value in state_dict.items():
        name = key
        if name.startswith('head.'):
            if with_head:
                out['head.fc.' + name[len('head.'):]] = value
            else:
                dropped.append(prefix + key)
            continue
        if name.endswith('fea_pos'):
            gen1 = True
            dropped.append(prefix + key)
            continue
        if not name.startswith(BACKBONE_PREFIXES):
            dropped.append(prefix + key)
            continue
        for old, new in GEN1_RENAMES:
            if old in name:
                name = name.replace(old, new)
                gen1 = True
        if re.search(r'\.mlp\.fc[12]\.weight$', name) and value.dim() == 4:
            if tuple(value.shape[2:]) != (1, 1):
                raise ValueError(f'{key}: expected a 1x1 conv weight, got {tuple(value.shape)}')
            value = value[:, :, 0, 0]
            gen1 = True
        if name.startswith('norm.'):  # the classifier's final norm
            name = 'norm6.' + name[len('norm.'):]
        out[name] = value
    norms = sorted({int(m.group(1)) for k in out for m in [re.match(r'norm(\d)\.', k)] if m})
    info = dict(layout='generation-1' if gen1 else 'current', out_indices=tuple(n // 2 for n in norms),
                dropped=dropped, prefix=prefix)
    return out, info


def _meta_date(meta) -> Optional[Tuple[int, int, int]]:
    """``meta['time']`` of mmcv 1.x checkpoints (``time.asctime()``), as (year, month, day)."""
    stamp = meta.get('time') if isinstance(meta, dict) else None
    if not isinstance(stamp, str):
        return None
    try:
        t = time.strptime(stamp.strip(), '%a %b %d %H:%M:%S %Y')
    except ValueError:
        return None
    return t.tm_year, t.tm_mon, t.tm_mday


def decide_norm_by(info: dict, meta, requested: Optional[str]) -> Tuple[Optional[str], str]:
    """``(norm_by, reason)``; ``norm_by`` is None when neither the file nor ``--norm-by`` decides it."""
    evidence, reason = None, ''
    if isinstance(meta, dict) and meta.get('norm_by') in NORM_BY:
        evidence, reason = meta['norm_by'], "the file's meta['norm_by'] (an mmcluster checkpoint)"
    elif info['layout'] == 'generation-1':
        evidence, reason = 'mask', 'generation-1 key names (official code before 2023-05-31)'
    else:
        date = _meta_date(meta)
        if date is not None:
            evidence = 'mask' if date <= FIX_DATE else 'sim'
            reason = (f"meta['time'] {meta['time']!r} is {'before' if evidence == 'mask' else 'after'} the "
                      'official change of 2023-05-31')
    if requested is None:
        return evidence, reason
    if evidence is not None and evidence != requested:
        print(f'WARNING: --norm-by {requested} overrides norm_by={evidence!r} inferred from {reason}')
        return requested, f'--norm-by (overriding {reason})'
    return requested, '--norm-by' + (f' (agrees with {reason})' if evidence else '')


def build_backbone(arch, out_indices, norm_by: str, proposal: Optional[int] = None):
    from mmcluster.models.backbones.context_cluster import ContextCluster
    return ContextCluster(arch=arch, out_indices=out_indices or (3, ), norm_by=norm_by, proposal=proposal)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official checkpoint (timm .pth.tar, mmdet/mmseg .pth, raw state dict)')
    parser.add_argument('dst', help='output checkpoint: dict(state_dict=..., meta=dict(norm_by=..., ...))')
    parser.add_argument('--arch', required=True,
                        help='ContextCluster arch name (tiny, tiny2, tiny_plain, small, medium) or a JSON dict')
    parser.add_argument('--ema', action='store_true', help='convert state_dict_ema instead of state_dict')
    parser.add_argument('--norm-by', choices=NORM_BY, default=None,
                        help="aggregation the weights were trained with: 'sim' (1 + sum s^, paper Eq. 1; official "
                        "code since 2023-05-31, June-2023 re-trained release) or 'mask' (1 + sum a, earlier code). "
                        'Required when the file does not tell.')
    parser.add_argument('--with-head', action='store_true',
                        help='keep the classifier as head.fc.* and prefix the backbone with backbone. '
                        '(an mmpretrain ImageClassifier checkpoint)')
    parser.add_argument('--add-prefix', action='store_true',
                        help='write backbone keys as backbone.* (for loading a whole detector / segmentor)')
    parser.add_argument('--proposal', type=int, default=None,
                        help='centres per side of the dense variants (2, 5, 7 for /4, /25, /49); only used for '
                        'the check model')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    arch = arch_arg(args.arch)
    source = load_source(args.src, ema=args.ema)
    if source is None:
        return 2
    ckpt, src = source
    new, info = convert(src, with_head=args.with_head)
    meta_in = ckpt.get('meta') if isinstance(ckpt, dict) else None
    norm_by, reason = decide_norm_by(info, meta_in, args.norm_by)
    print(f'{info["layout"]} key layout' + (f', stripped prefix {info["prefix"]!r}' if info['prefix'] else ''))
    if norm_by is None:
        print('ERROR: cannot tell which aggregation these weights were trained with: the key names are the '
              'current ones and the file carries no date. Pass --norm-by sim (paper Eq. 1; official code since '
              '2023-05-31, the June-2023 re-trained ImageNet release) or --norm-by mask (earlier code and '
              'checkpoints). Nothing written.')
        return 2
    print(f'norm_by={norm_by!r} from {reason}')
    backbone = OrderedDict((k, v) for k, v in new.items() if not k.startswith('head.'))
    model = build_backbone(arch, info['out_indices'], norm_by, args.proposal)
    report = check_state_dict(backbone, model)
    print_dropped(info['dropped'])
    print(report)
    if args.with_head or args.add_prefix:
        new = OrderedDict((k if k.startswith('head.') else 'backbone.' + k, v) for k, v in new.items())
    meta = dict(converter='coc2mmcluster', source=Path(args.src).name, ema=bool(args.ema), norm_by=norm_by,
                norm_by_source=reason, key_layout=info['layout'], arch=arch, out_indices=list(info['out_indices']))
    save_converted(args.dst, new, meta)
    prefix_note = ", prefix='backbone.'" if (args.with_head or args.add_prefix) else ''
    print(f'saved {len(new)} tensors to {args.dst}; build with '
          f"backbone=dict(type='ContextCluster', arch={arch!r}, out_indices=..., "
          f"init_cfg=dict(type='Pretrained', checkpoint={str(args.dst)!r}{prefix_note})) "
          f"(norm_by=None follows meta['norm_by']={norm_by!r})")
    return report.exit_code


if __name__ == '__main__':
    sys.exit(main())
