"""Convert a released ClusterFormer classification checkpoint to mmcluster's ``ClusterFormer``.

Source layout (ClusterFormer/ClusterFormer, ``mmcls/models/backbones/cluster.py``, commit 0c384d2; an mmcls
0.x ``ImageClassifier``): ``backbone.patch_embed.proj.*``, ``backbone.network.{0,2,4,6}.{j}.{norm1,norm2,
layer_scale_1,layer_scale_2}``, ``...token_mixer.{conv1,conv2,conv_c,conv_v,conv_f}.*`` and
``...token_mixer.{sim_alpha,sim_beta}``, ``...mlp.{fc1,fc2}.*`` (1x1 convs), ``backbone.network.{1,3,5}.proj.*``,
``backbone.norm{0,2,4,6}.*``, ``head.fc.*``. No checkpoint was ever published; this converts any checkpoint
trained with that code (a raw state dict, ``state_dict`` or ``model`` entries; read with the shared safe
loader, nothing pickled is executed).

Mapping (1x1 conv weights ``[out, in, 1, 1]`` become Linear weights ``[out, in]``):

=============================  =====================================
released                       mmcluster
=============================  =====================================
``token_mixer.conv1``          ``token_mixer.sim_proj``
``token_mixer.conv_v``         ``token_mixer.clustering.k_proj``
``token_mixer.conv_f``         ``token_mixer.clustering.v_proj``
``token_mixer.conv_c``         ``token_mixer.clustering.q_proj``
``token_mixer.conv2``          ``token_mixer.out_proj``
``token_mixer.sim_alpha/beta`` ``token_mixer.dispatch.sim_alpha/beta``
``mlp.fc1`` / ``mlp.fc2``      ``mlp.fc1`` / ``mlp.fc2``
=============================  =====================================

Everything else keeps its name. The result is checked against a ``ClusterFormer(arch, compat=True)`` (the
released semantics; only ``compat=True`` with ``dispatch='coc'`` has exactly the released parameters) and
every missing / unexpected / mismatched key is reported; exit status 1 if the load is not exact, 2 for a missing,
refused or non-checkpoint input.

Example::

    python tools/model_converters/clusterformer2mmcluster.py cluster_tiny.pth clusterformer_tiny_mmcluster.pth \
        --arch tiny
    # then: model.backbone = dict(type='ClusterFormer', arch='tiny', compat=True,
    #                             init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.'))
"""
import argparse
import re
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Tuple

import torch

RENAMES = (('token_mixer.conv1.', 'token_mixer.sim_proj.'), ('token_mixer.conv_v.', 'token_mixer.clustering.k_proj.'),
           ('token_mixer.conv_f.', 'token_mixer.clustering.v_proj.'),
           ('token_mixer.conv_c.', 'token_mixer.clustering.q_proj.'), ('token_mixer.conv2.', 'token_mixer.out_proj.'),
           ('token_mixer.sim_alpha', 'token_mixer.dispatch.sim_alpha'),
           ('token_mixer.sim_beta', 'token_mixer.dispatch.sim_beta'))
LINEAR_WEIGHT = re.compile(r'\.(token_mixer\.(sim_proj|out_proj|clustering\.[kvq]_proj)|mlp\.fc[12])\.weight$')


def convert(state_dict: Dict[str, torch.Tensor]) -> Tuple['OrderedDict[str, torch.Tensor]', List[str]]:
    """Released keys (with or without ``backbone.``) -> mmcluster keys ``backbone.*`` / ``head.fc.*``.

    Returns ``(new_state_dict, dropped)``: keys that are neither backbone nor ``head.fc`` are dropped.
    """
    prefixed = any(k.startswith('backbone.') for k in state_dict)
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    dropped: List[str] = []
    for key, value in state_dict.items():
        if key.startswith('head.fc.'):
            out[key] = value
            continue
        name = key
        if prefixed:
            if not key.startswith('backbone.'):
                dropped.append(key)
                continue
            name = key[len('backbone.'):]
        if not name.startswith(('patch_embed.', 'network.', 'norm')):
            dropped.append(key)
            continue
        for old, new in RENAMES:
            if old in name:
                name = name.replace(old, new)
                break
        if LINEAR_WEIGHT.search(name) and value.dim() == 4:
            if tuple(value.shape[2:]) != (1, 1):
                raise ValueError(f'{key}: expected a 1x1 conv weight, got {tuple(value.shape)}')
            value = value[:, :, 0, 0]
        out['backbone.' + name] = value
    return out, dropped


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='released checkpoint (mmcls .pth, raw state dict)')
    parser.add_argument('dst', help='output: dict(state_dict=..., meta=...) with backbone.* and head.fc.* keys')
    parser.add_argument('--arch', required=True, help="ClusterFormer arch ('tiny', 'small') or a JSON dict")
    parser.add_argument('--ema', action='store_true', help='convert the EMA weights')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    from mmcluster.models.backbones.clusterformer import ClusterFormer
    from mmcluster.utils.checkpoint import (arch_arg, check_state_dict, load_source, print_dropped,
                                            save_converted, strip_prefix)
    args = parse_args(argv)
    arch = arch_arg(args.arch)
    source = load_source(args.src, ema=args.ema)
    if source is None:
        return 2
    new, dropped = convert(source[1])
    backbone, _ = strip_prefix(new, 'backbone.')
    report = check_state_dict(backbone, ClusterFormer(arch=arch, compat=True))
    print_dropped(dropped)
    head = [k for k in new if k.startswith('head.')]
    print(f'head keys: {head or "none"}')
    print(report)
    save_converted(args.dst, new, dict(converter='clusterformer2mmcluster', source=Path(args.src).name, arch=arch,
                                       compat=True))
    print(f'saved {len(new)} tensors to {args.dst}; build ClusterFormer(arch={arch!r}, compat=True) with '
          "init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.') or load the whole classifier")
    return report.exit_code


if __name__ == '__main__':
    sys.exit(main())
