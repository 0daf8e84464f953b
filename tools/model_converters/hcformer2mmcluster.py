"""Convert official HCFormer checkpoints (DensoITLab/HCFormer, detectron2) to mmcluster models.

The official model (``docs/hcformer.md``, "Official checkpoint and key layout") keeps the clustering modules and
the HCFormer+ encoder inside its backbone and the decoder under ``sem_seg_head.predictor``. mmcluster splits
them into backbone, neck and head:

==========================================================  ===================================================
official (detectron2)                                       mmcluster (mmdet ``Mask2Former`` / mmseg
                                                            ``EncoderDecoder``)
==========================================================  ===================================================
``backbone.stem.{0,1}`` (ResNet conv1, FrozenBN)            ``backbone.conv1``, ``backbone.bn1``
``backbone.layerN.B.*`` (torchvision names)                 ``backbone.layerN.B.*`` (HCResNet)
``backbone.layerN.0.{conv2,downsample.0}.deform.{weight,    ``backbone.layerN.0.{conv2,downsample.0}.{weight,
bias}`` / ``.offset.*`` (DCNv2)                             bias}`` / ``.conv_offset.*``
FrozenBN (no counter)                                       BN + ``num_batches_tracked`` = 0 (added)
``backbone.patch_embed.proj``                               ``backbone.patch_embed.projection`` (HCSwin)
``backbone.layers.i.blocks.j.{norm1,norm2}``                ``backbone.stages.i.blocks.j.{norm1,norm2}``
``...attn.{qkv,proj,relative_position_*}``                  ``...attn.w_msa.{qkv,proj,relative_position_*}``
``...mlp.fc1`` / ``...mlp.fc2``                             ``...ffn.layers.0.0`` / ``...ffn.layers.1``
``backbone.layers.i.downsample.{reduction,norm}``           ``backbone.stages.i.downsample.*`` (channel order
                                                            of the 2x2 concat -> ``nn.Unfold``'s)
``backbone.norm{i}``                                        ``backbone.norm{i}``
``backbone.clustering_layers.l.*`` (ResNet; l=0 top)        ``neck.clustering_layers.l.*``
``backbone.layers.i.clustering.*`` (Swin)                   ``neck.clustering_layers.{n-2-i}.*``
``...temp`` (shape [1])                                     ``...scale`` (0-d)
``backbone.aux.input_proj.{0,1}``                           ``neck.input_proj.{0,1}`` (HCFormer+)
``backbone.aux.encoder.layers.k.{self_attn.*, linear1,      ``neck.encoder.layers.k.{self_attn.attn.*,
linear2, norm1, norm2}``                                    ffn.layers.0.0, ffn.layers.1, norms.0, norms.1}``
``sem_seg_head.predictor.{query_feat,query_embed,           ``HEAD.{query_feat,query_embed,level_embed,
level_embed,input_proj,mask_proj}``                         input_proj,mask_proj}``
``...predictor.class_embed``                                ``HEAD.cls_embed``
``...predictor.mask_embed.layers.{0,1,2}``                  ``HEAD.mask_embed.{0,2,4}``
``...predictor.decoder_norm``                               ``HEAD.transformer_decoder.post_norm``
``...transformer_cross_attention_layers.k.multihead_attn``  ``HEAD.transformer_decoder.layers.k.cross_attn.attn``
``...transformer_self_attention_layers.k.self_attn``        ``HEAD.transformer_decoder.layers.k.self_attn.attn``
``...transformer_{cross,self}_attention_layers.k.norm``,    ``HEAD.transformer_decoder.layers.k.norms.{0,1,2}``
``...transformer_ffn_layers.k.norm``
``...transformer_ffn_layers.k.{linear1,linear2}``           ``HEAD.transformer_decoder.layers.k.ffn.layers.{0.0,1}``
``criterion.empty_weight``                                  dropped (the class weights are in the loss config)
==========================================================  ===================================================

``HEAD`` is ``panoptic_head`` (mmdet; default) or ``decode_head`` (mmseg, ``--head decode_head``). The old
decoder name ``static_query`` is read as ``query_feat`` (as the official loader does). Any key the table does
not cover is an error (nothing is dropped silently besides ``criterion.empty_weight``, which is reported).

The file is read with :func:`mmcluster.utils.checkpoint.load_checkpoint_safely` (no pickled code runs). With
``--config`` the converted weights are loaded strictly into the model the config builds; missing, unexpected
and shape-mismatched keys are listed and the script exits with status 1 unless the match is exact (2: a missing,
refused or non-checkpoint input).

Example (the released HCFormer+ Swin-L COCO panoptic checkpoint)::

    python tools/model_converters/hcformer2mmcluster.py HCFormer+-SwinL-COCO-200epoch.pth \\
        hcformerplus_swin-l_coco-panoptic.pth \\
        --config configs/hcformer/<the Swin-L HCFormer+ panoptic config>.py
"""
import argparse
import contextlib
import re
import sys
from collections import OrderedDict
from typing import Dict, List, Mapping, Tuple

import torch
from torch import Tensor

SWIN_BLOCK = (('attn.relative_position_bias_table', 'attn.w_msa.relative_position_bias_table'),
              ('attn.relative_position_index', 'attn.w_msa.relative_position_index'),
              ('attn.qkv.', 'attn.w_msa.qkv.'), ('attn.proj.', 'attn.w_msa.proj.'),
              ('mlp.fc1.', 'ffn.layers.0.0.'), ('mlp.fc2.', 'ffn.layers.1.'))
ENCODER_LAYER = (('self_attn.', 'self_attn.attn.'), ('linear1.', 'ffn.layers.0.0.'), ('linear2.', 'ffn.layers.1.'),
                 ('norm1.', 'norms.0.'), ('norm2.', 'norms.1.'))
CLUSTERING_PARAMS = ('fine_emb.weight', 'coarse_emb.weight', 'fine_norm.weight', 'fine_norm.bias',
                     'coarse_norm.weight', 'coarse_norm.bias')
DROPPED = ('criterion.empty_weight', )
HEADS = ('panoptic_head', 'decode_head')


class ConversionError(KeyError):
    """A key of the official checkpoint that the mapping does not cover."""

    def __str__(self) -> str:
        return str(self.args[0])


def _sub(name: str, table) -> str:
    for old, new in table:
        if name.startswith(old):
            return new + name[len(old):]
    raise ConversionError(f'no mapping for {name!r}')


def patch_merging_to_unfold(value: Tensor) -> Tensor:
    """PatchMerging weights: official 2x2 concat order ``[(0,0), (1,0), (0,1), (1,1)] x C`` (position-major) ->
    ``nn.Unfold``'s ``C x [(0,0), (0,1), (1,0), (1,1)]`` (channel-major), along the last dimension."""
    c4 = value.shape[-1]
    v = value.reshape(*value.shape[:-1], 4, c4 // 4)[..., [0, 2, 1, 3], :]
    return v.transpose(-1, -2).reshape(value.shape)


def _backbone_resnet(name: str) -> str:
    if name.startswith('stem.0.'):
        return 'conv1.' + name[len('stem.0.'):]
    if name.startswith('stem.1.'):
        return 'bn1.' + name[len('stem.1.'):]
    m = re.fullmatch(r'(layer\d\.0\.(?:conv2|downsample\.0))\.(deform|offset)\.(weight|bias)', name)
    if m:
        return f'{m[1]}.{"" if m[2] == "deform" else "conv_offset."}{m[3]}'
    if re.fullmatch(r'layer\d\.\d+\.(conv\d|bn\d|downsample\.[01])\.(weight|bias|running_mean|running_var|'
                    r'num_batches_tracked)', name):
        return name
    raise ConversionError(f'no mapping for backbone.{name!r} (torchvision-style HCResNet)')


def _backbone_swin(name: str) -> str:
    if name.startswith('patch_embed.proj.'):
        return 'patch_embed.projection.' + name[len('patch_embed.proj.'):]
    if name.startswith('patch_embed.norm.') or re.fullmatch(r'norm\d\.(weight|bias)', name):
        return name
    m = re.fullmatch(r'layers\.(\d+)\.blocks\.(\d+)\.(.+)', name)
    if m:
        rest = m[3] if m[3].startswith(('norm1.', 'norm2.')) else _sub(m[3], SWIN_BLOCK)
        return f'stages.{m[1]}.blocks.{m[2]}.{rest}'
    m = re.fullmatch(r'layers\.(\d+)\.downsample\.((?:reduction|norm)\.(?:weight|bias))', name)
    if m:
        return f'stages.{m[1]}.downsample.{m[2]}'
    raise ConversionError(f'no mapping for backbone.{name!r} (HCSwinTransformer)')


def convert_clustering(state_dict: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """One official ``Clustering`` module's state dict -> :class:`~mmcluster.models.layers.HCClustering`'s."""
    return OrderedDict(_clustering(k, v) for k, v in state_dict.items())


def _clustering(param: str, value: Tensor) -> Tuple[str, Tensor]:
    if param == 'temp':
        if value.numel() != 1:
            raise ConversionError(f'a clustering scale must have one element, got shape {tuple(value.shape)}')
        return 'scale', value.reshape(())
    if param not in CLUSTERING_PARAMS:
        raise ConversionError(f'no mapping for clustering parameter {param!r}')
    return param, value


def _predictor(name: str, head: str) -> str:
    name = name.replace('static_query', 'query_feat')  # the official loader's rename of old checkpoints
    if re.fullmatch(r'(query_feat|query_embed|level_embed)\.weight|(input_proj|mask_proj)\.(weight|bias)', name):
        return f'{head}.{name}'
    if name.startswith('class_embed.'):
        return f'{head}.cls_embed.' + name[len('class_embed.'):]
    m = re.fullmatch(r'mask_embed\.layers\.([012])\.(weight|bias)', name)
    if m:
        return f'{head}.mask_embed.{2 * int(m[1])}.{m[2]}'
    if name.startswith('decoder_norm.'):
        return f'{head}.transformer_decoder.post_norm.' + name[len('decoder_norm.'):]
    m = re.fullmatch(r'transformer_(cross_attention|self_attention|ffn)_layers\.(\d+)\.(.+)', name)
    if m:
        kind, k, rest = m[1], m[2], m[3]
        norm = dict(cross_attention=0, self_attention=1, ffn=2)[kind]
        if rest.startswith('norm.'):
            rest = f'norms.{norm}.' + rest[len('norm.'):]
        elif kind == 'cross_attention' and rest.startswith('multihead_attn.'):
            rest = 'cross_attn.attn.' + rest[len('multihead_attn.'):]
        elif kind == 'self_attention' and rest.startswith('self_attn.'):
            rest = 'self_attn.attn.' + rest[len('self_attn.'):]
        elif kind == 'ffn' and rest.startswith(('linear1.', 'linear2.')):
            rest = ('ffn.layers.0.0.' if rest.startswith('linear1.') else 'ffn.layers.1.') + rest[len('linearX.'):]
        else:
            raise ConversionError(f'no mapping for sem_seg_head.predictor.{name!r}')
        return f'{head}.transformer_decoder.layers.{k}.{rest}'
    raise ConversionError(f'no mapping for sem_seg_head.predictor.{name!r}')


def detect_backbone(state_dict: Mapping[str, Tensor]) -> str:
    """``'resnet'`` (official HCResNet) or ``'swin'`` (official HCSwinTransformer) from the key names."""
    if any(k.startswith('backbone.stem.') for k in state_dict):
        return 'resnet'
    if any(k.startswith('backbone.patch_embed.') for k in state_dict):
        return 'swin'
    raise ConversionError('not an official HCFormer checkpoint: no backbone.stem.* (HCResNet) nor '
                          'backbone.patch_embed.* (HCSwinTransformer) keys')


def convert(state_dict: Mapping[str, Tensor], head: str = 'panoptic_head') -> Tuple['OrderedDict[str, Tensor]', dict]:
    """Official HCFormer state dict -> mmcluster keys (see the module docstring).

    Returns ``(state_dict, info)``; ``info``: ``backbone`` (``'resnet'`` / ``'swin'``), ``level`` (number of
    clustering modules), ``with_encoder`` (HCFormer+), ``num_queries``, ``dropped`` (keys left out: only
    ``criterion.empty_weight``), ``added`` (BN counters the official FrozenBN does not have).

    Raises:
        ConversionError: a key outside the official layout (nothing is dropped silently).
    """
    if head not in HEADS:
        raise ValueError(f'head must be one of {HEADS}, got {head!r}')
    kind = detect_backbone(state_dict)
    num_stages = 1 + max((int(m[1]) for k in state_dict for m in [re.match(r'backbone\.layers\.(\d+)\.', k)] if m),
                         default=2)
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    dropped: List[str] = []
    clusterings = set()
    for key, value in state_dict.items():
        if key in DROPPED:
            dropped.append(key)
            continue
        if key.startswith('sem_seg_head.predictor.'):
            out[_predictor(key[len('sem_seg_head.predictor.'):], head)] = value
            continue
        if not key.startswith('backbone.'):
            raise ConversionError(f'no mapping for {key!r} (expected backbone.*, sem_seg_head.predictor.* or '
                                  f'{", ".join(DROPPED)})')
        name = key[len('backbone.'):]
        m = (re.fullmatch(r'clustering_layers\.(\d+)\.(.+)', name) if kind == 'resnet'
             else re.fullmatch(r'layers\.(\d+)\.clustering\.(.+)', name))
        if m:
            idx = int(m[1]) if kind == 'resnet' else num_stages - 2 - int(m[1])
            param, value = _clustering(m[2], value)
            out[f'neck.clustering_layers.{idx}.{param}'] = value
            clusterings.add(idx)
            continue
        if name.startswith('aux.input_proj.'):
            out['neck.input_proj.' + name[len('aux.input_proj.'):]] = value
            continue
        m = re.fullmatch(r'aux\.encoder\.layers\.(\d+)\.(.+)', name)
        if m:
            out[f'neck.encoder.layers.{m[1]}.{_sub(m[2], ENCODER_LAYER)}'] = value
            continue
        if name.startswith('aux.'):
            raise ConversionError(f'no mapping for {key!r}')
        new = _backbone_resnet(name) if kind == 'resnet' else _backbone_swin(name)
        if kind == 'swin' and '.downsample.' in new:
            value = patch_merging_to_unfold(value)
        out['backbone.' + new] = value
    added = []
    if kind == 'resnet':  # detectron2's FrozenBatchNorm2d has no counter; mmdet's BN does
        for key in [k for k in out if k.startswith('backbone.') and k.endswith('.running_var')]:
            counter = key[:-len('running_var')] + 'num_batches_tracked'
            if counter not in out:
                out[counter] = torch.zeros((), dtype=torch.long, device=out[key].device)
                added.append(counter)
    if sorted(clusterings) != list(range(len(clusterings))):
        raise ConversionError(f'clustering modules {sorted(clusterings)} are not the top levels 0..L-1')
    query = state_dict.get('sem_seg_head.predictor.query_feat.weight',
                           state_dict.get('sem_seg_head.predictor.static_query.weight'))
    info = dict(backbone=kind, level=len(clusterings), with_encoder=any(k.startswith('neck.encoder.') for k in out),
                num_queries=None if query is None else int(query.shape[0]), dropped=dropped, added=added)
    return out, info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='official checkpoint (detectron2 .pth / .pkl)')
    parser.add_argument('dst', help='output mmengine checkpoint')
    parser.add_argument('--config', help='mmcluster config: load the converted weights into its model, strictly')
    parser.add_argument('--head', default='panoptic_head', choices=HEADS,
                        help='panoptic_head (mmdet Mask2Former, default) or decode_head (mmseg EncoderDecoder)')
    args = parser.parse_args(argv)

    from mmcluster.utils.checkpoint import check_state_dict, load_source
    source = load_source(args.src)  # prints the error of a missing / refused / non-checkpoint file
    if source is None:
        return 2
    try:
        converted, info = convert(source[1], head=args.head)
    except ConversionError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'{args.src}: official HC{"Swin" if info["backbone"] == "swin" else "ResNet"} HCFormer'
          f'{"+" if info["with_encoder"] else ""}, level {info["level"]}, {info["num_queries"]} queries; '
          f'{len(converted)} keys; dropped {info["dropped"]}; added {len(info["added"])} BN counters')
    code = 0
    if args.config:
        model = build_model(args.config)
        report = check_state_dict(converted, model)
        print(report)
        code = report.exit_code
        if code == 0:
            model.load_state_dict(converted, strict=True)
            print(f'loaded strictly into {type(model).__name__} from {args.config}')
    meta = dict(converter='tools/model_converters/hcformer2mmcluster.py', source=str(args.src),
                **{k: v for k, v in info.items() if k != 'added'})
    torch.save(dict(state_dict=converted, meta=meta), args.dst)
    print(f'saved {args.dst}')
    return code


def build_model(config: str, meta: bool = False):
    """The model of an mmcluster config, built in its toolkit's scope, without loading any weights.

    With ``meta`` it is built on PyTorch's meta device: parameters have shapes but no memory (key and shape
    checks of the large models, e.g. Swin-L's 217M parameters, in a second).
    """
    from mmengine.config import Config
    from mmengine.registry import MODELS, DefaultScope, init_default_scope

    import mmcluster  # noqa: F401  (registers the modules)
    cfg = Config.fromfile(config)
    cfg.model.get('backbone', {}).pop('init_cfg', None)  # no download: the converted weights replace it
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    with DefaultScope.overwrite_default_scope(scope), _device(meta):
        return MODELS.build(cfg.model)


@contextlib.contextmanager
def _device(meta: bool):
    if not meta:
        yield
        return
    linspace = torch.linspace  # Swin reads its drop-path rates with .item(): keep them on the CPU
    torch.linspace = lambda *a, **kw: linspace(*a, **dict(kw, device='cpu'))
    try:
        with torch.device('meta'):
            yield
    finally:
        torch.linspace = linspace


if __name__ == '__main__':
    sys.exit(main())
