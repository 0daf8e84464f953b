"""Convert the authors' kMaX-DeepLab PyTorch checkpoints (bytedance/kmax-deeplab, detectron2) to mmcluster.

Reads, without running any pickled code (``mmcluster.utils.checkpoint.load_checkpoint_safely``), a detectron2
``.pth`` / ``.pkl`` (``model`` key) or a raw state dict, and writes ``{'state_dict': ..., 'meta': ...}`` for
mmdet's ``MaskFormer`` detector with ``panoptic_head=dict(type='KMaXHead')`` (``docs/kmax_deeplab.md``).

Key layout (official -> mmcluster):

* ``sem_seg_head.pixel_decoder.X`` -> ``panoptic_head.pixel_decoder.X'``;
* ``sem_seg_head.predictor._auxiliary_semantic_predictor.X`` -> ``panoptic_head.aux_semantic_head.X'``
  (the depthwise ``nn.Sequential`` variant: ``0.`` / ``1.`` / ``2.`` -> ``conv_block_0.`` / ``conv_block_1.`` /
  ``final_conv.``);
* ``sem_seg_head.predictor.X`` -> ``panoptic_head.transformer_decoder.X'``;

where ``X'`` drops the leading underscore of every name component and fixes the official misspelling
``_predcitor`` -> ``predictor`` (e.g. ``_kmax_transformer_layers.0._predcitor._transformer_class_head.conv.weight``
-> ``kmax_transformer_layers.0.predictor.transformer_class_head.conv.weight``). Shapes are unchanged.

* Backbone, detectron2 ResNet (``custom_bn_build_resnet_backbone``, ``STRIDE_IN_1X1: False`` = mmdet
  ``style='pytorch'``): ``backbone.stem.conv1.{weight,norm.*}`` -> ``backbone.{conv1.weight,bn1.*}``;
  ``backbone.res{s}.{b}.conv{i}.{weight,norm.*}`` -> ``backbone.layer{s-1}.{b}.{conv{i}.weight,bn{i}.*}``;
  ``...shortcut.{weight,norm.*}`` -> ``...downsample.{0.weight,1.*}``.
* Backbone, the authors' ConvNeXt -> mmcluster ``KMaXConvNeXt`` (mmpretrain's ConvNeXt with the official
  TF-style padding and no output norms, ``mmcluster/models/backbones/kmax_convnext.py``; the ConvNeXt configs
  use it): ``dwconv`` -> ``depthwise_conv``, ``pwconv1`` / ``pwconv2`` -> ``pointwise_conv1`` /
  ``pointwise_conv2``; ``downsample_layers`` and ``gamma`` keep their names. ``--convnext-out-norms`` adds
  the output LayerNorms ``norm{i}`` of mmpretrain's ``ConvNeXt`` (or ``KMaXConvNeXt(out_norms=True)``) with
  weight 1 / bias 0: that model is *not* the official one (docs/kmax_deeplab.md, deviations).

``num_batches_tracked`` buffers are kept. With ``--config`` the converted weights are checked against the
model the config builds (missing / unexpected / shape-mismatched keys listed; exit status 1 unless exact; 2 for a
missing, refused or non-checkpoint input).

Example::

    python tools/model_converters/kmax2mmcluster.py kmax_r50.pth kmax_r50_mmcluster.pth \\
        [--config configs/kmax_deeplab/<config>.py]
"""
import argparse
import re
import sys
from collections import OrderedDict
from typing import Dict, Optional

import torch

PREFIXES = (
    ('sem_seg_head.predictor._auxiliary_semantic_predictor.', 'panoptic_head.aux_semantic_head.'),
    ('sem_seg_head.pixel_decoder.', 'panoptic_head.pixel_decoder.'),
    ('sem_seg_head.predictor.', 'panoptic_head.transformer_decoder.'),
)
AUX_SEQUENTIAL = {'0': 'conv_block_0', '1': 'conv_block_1', '2': 'final_conv'}
CONVNEXT_RENAMES = {'dwconv': 'depthwise_conv', 'pwconv1': 'pointwise_conv1', 'pwconv2': 'pointwise_conv2'}


def _strip_underscores(path: str) -> str:
    parts = [p[1:] if p.startswith('_') else p for p in path.split('.')]
    return '.'.join('predictor' if p == 'predcitor' else p for p in parts)


def _convert_backbone(key: str) -> str:
    rest = key[len('backbone.'):]
    m = re.match(r'stem\.conv1\.(weight|norm\.(.+))$', rest)
    if m:
        return 'backbone.conv1.weight' if m.group(1) == 'weight' else f'backbone.bn1.{m.group(2)}'
    m = re.match(r'res(\d)\.(\d+)\.(conv\d|shortcut)\.(weight|norm\.(.+))$', rest)
    if m:
        stage, block, conv, what, norm_key = m.groups()
        prefix = f'backbone.layer{int(stage) - 1}.{block}.'
        if conv == 'shortcut':
            return prefix + ('downsample.0.weight' if what == 'weight' else f'downsample.1.{norm_key}')
        i = conv[-1]
        return prefix + (f'conv{i}.weight' if what == 'weight' else f'bn{i}.{norm_key}')
    parts = rest.split('.')
    return 'backbone.' + '.'.join(CONVNEXT_RENAMES.get(p, p) for p in parts)


def convert_key(key: str) -> Optional[str]:
    """One official key -> its mmcluster key (``None`` for a key outside the model, e.g. pixel mean/std)."""
    for old, new in PREFIXES:
        if key.startswith(old):
            rest = key[len(old):]
            if new.endswith('aux_semantic_head.'):
                head, _, tail = rest.partition('.')
                if head in AUX_SEQUENTIAL:
                    rest = f'{AUX_SEQUENTIAL[head]}.{tail}'
            return new + _strip_underscores(rest)
    if key.startswith('backbone.'):
        return _convert_backbone(key)
    return None


def convert(state_dict: Dict[str, torch.Tensor], convnext_out_norms: bool = False):
    """Official state dict -> ``(mmcluster state dict, dropped official keys)``.

    ``convnext_out_norms``: add weight-1 / bias-0 output norms ``backbone.norm{i}`` to a ConvNeXt backbone, for
    mmpretrain's ``ConvNeXt`` layout (the official model and ``KMaXConvNeXt`` have none).
    """
    out, dropped = OrderedDict(), []
    for key, value in state_dict.items():
        new = convert_key(key)
        if new is None:
            dropped.append(key)
        else:
            if new in out:
                raise ValueError(f'two official keys map to {new!r}')
            out[new] = value
    stage_norms = sorted(k for k in out if re.match(r'backbone\.downsample_layers\.\d\.[01]\.weight$', k))
    if stage_norms and convnext_out_norms:  # mmpretrain's output norms (absent from the official model)
        for i in range(4):
            w = out.get(f'backbone.stages.{i}.0.gamma')
            if w is not None and f'backbone.norm{i}.weight' not in out:
                out[f'backbone.norm{i}.weight'] = torch.ones_like(w)
                out[f'backbone.norm{i}.bias'] = torch.zeros_like(w)
    return out, dropped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='kMaX-DeepLab (bytedance/kmax-deeplab) -> mmcluster')
    parser.add_argument('src', help='official checkpoint (.pth / .pkl)')
    parser.add_argument('dst', help='output file')
    parser.add_argument('--config', help='mmcluster config whose model the weights must match exactly')
    parser.add_argument('--convnext-out-norms', action='store_true',
                        help="add identity output norms norm{i} (mmpretrain ConvNeXt layout; not the official model)")
    args = parser.parse_args(argv)
    from mmcluster.utils.checkpoint import check_state_dict, load_source
    source = load_source(args.src)  # prints the error of a missing / refused / non-checkpoint file
    if source is None:
        return 2
    state, dropped = convert(source[1], convnext_out_norms=args.convnext_out_norms)
    if dropped:
        print(f'dropped {len(dropped)} keys outside the model: {dropped}')
    code = 0
    if args.config:
        from mmengine.config import Config
        from mmengine.registry import MODELS, init_default_scope

        import mmcluster  # noqa: F401  (registers the kMaX modules)
        cfg = Config.fromfile(args.config)
        init_default_scope(cfg.get('default_scope', 'mmdet'))
        try:  # shapes are all the check needs: skip the initialisation where the model allows it
            with torch.device('meta'):
                model = MODELS.build(cfg.model)
        except (RuntimeError, NotImplementedError):
            model = MODELS.build(cfg.model)
        report = check_state_dict(state, model)
        print(report)
        code = report.exit_code
    torch.save(dict(state_dict=state, meta=dict(source=args.src, converter='kmax2mmcluster')), args.dst)
    print(f'wrote {len(state)} tensors to {args.dst}')
    return code


if __name__ == '__main__':
    sys.exit(main())
