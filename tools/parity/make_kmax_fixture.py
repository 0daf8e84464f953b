"""Parity fixtures for kMaX-DeepLab from the official PyTorch code (run by hand, never at test time).

Needs:
* the official repository bytedance/kmax-deeplab (tested at commit f8e1d04, "Removed duplicated lines as
  suggested in issue#1") as a git directory, e.g. the mirror the ``fetch`` tool makes:
  ``/work/.mirror/bytedance+kmax-deeplab/repo``;
* timm 0.6.13 in a scratch folder (never in .venv):
  ``.venv/bin/pip install --target /tmp/scratch-kmax timm==0.6.13 --no-deps``.

detectron2 is not installed: the few names the official model files import (``configurable``,
``Registry``, ``ShapeSpec``, ``SEM_SEG_HEADS_REGISTRY``, ``BACKBONE_REGISTRY``, ``Backbone``, ``CNNBlockBase``,
``Conv2d`` with its ``norm``, fvcore's ``c2_msra_fill``) are stubbed in ``sys.modules`` below; ``Tensor.float()`` keeps float64 tensors (see ``_install_stubs``);
``nn.SyncBatchNorm`` is replaced by a rank-agnostic BatchNorm with the same arguments
so that the modules run on the CPU in train mode too (no process group).

Usage::

    .venv/bin/python tools/parity/make_kmax_fixture.py --repo /work/.mirror/bytedance+kmax-deeplab/repo \
        --scratch /tmp/scratch-kmax --out tests/data/fixtures

Writes (float64, CPU):

* ``kmax_layer.pt``: one official ``kMaXTransformerLayer`` (pixel 8 ch, query 16 ch, 6 classes incl. void,
  8 queries, 5x7 pixels, batch 2): input, full outputs in eval mode and in train mode (batch statistics).
* ``kmax_pixel_decoder.pt``: an official ``kMaXPixelDecoder`` with small widths (in 4/8/8/16, dec
  channels 16/8/4/4, layers 1/2/1/1) at its training size 65 x 33 (maps 17x9 / 9x5 / 5x3 / 3x2; axial
  attention at strides 32 and 16): inputs, the three full outputs.
* ``kmax_decoder.pt``: an official ``kMaXTransformerDecoder`` (2+2+2 layers, 10 queries, 4 classes) on
  small non-square maps (3x2 / 5x3 / 9x5, pixel space 17x9): inputs and final / auxiliary outputs in eval
  mode; final outputs and auxiliary class logits in train mode (batch statistics: there the final masks'
  argmax spreads over 9 of the 10 queries, in eval mode over one).
* ``kmax_convnext.pt``: the official ``ConvNeXt`` (``modeling/backbone/convnext.py``; depths 1/1/1/1, dims
  4/8/16/32) on a ``1 x 3 x 65 x 75`` input (:func:`deterministic_image`, not stored): the four stage outputs
  (17x19 / 9x10 / 5x5 / 3x3: the official TF-style padding), eval mode.
* ``kmax_r50_keys.json.gz``: every key and shape of the official R50 COCO model -- the ResNet-50 backbone and the
  ``sem_seg_head`` (pixel decoder + transformer decoder with its auxiliary semantic head) -- from the official
  module definitions, and the head's parameter counts; plus the keys of the official ConvNeXt-T backbone
  (``convnext_tiny_backbone_keys``, kmax_convnext_tiny.yaml).

Weights are not stored (they would be megabytes): every tensor of the official state dict is filled by
:func:`deterministic_tensor` from its key and shape (no RNG), which the tests recompute; the fixture stores
the keys and shapes (gzip-compressed JSON, :func:`pack_shapes` / :func:`unpack_shapes`: the key strings were
most of a fixture's size) and a checksum of the filled state dict.
"""
import argparse
import gzip
import json
import math
import os
import subprocess
import sys
import tempfile
import types
import zlib
from collections import OrderedDict

import torch


def deterministic_tensor(key: str, shape) -> torch.Tensor:
    """A float64 tensor for ``key`` of ``shape``: ``sin(0.7 i + 0.013 i^2 + phase(key))`` scaled by the fan-in.

    The quadratic term makes the rows of a weight matrix sinusoids of different frequencies, so the matrix has
    full rank (a plain ``sin(0.7 i + phase)`` gives rank-2 matrices, whose features collapse onto two
    directions: the k-means layer then assigned every pixel of an image to one centre). 1-D weights and running variances are ``1 + 0.3 x`` (positive), other 1-D tensors ``0.3 x``; tensors
    of rank >= 2 are ``x / sqrt(numel / shape[0])``. ``num_batches_tracked`` is 0.
    """
    shape = tuple(shape)
    n = int(math.prod(shape)) if shape else 1
    if key.endswith('num_batches_tracked'):
        return torch.zeros(shape, dtype=torch.long)
    phase = (zlib.crc32(key.encode()) % 10007) / 1000.0
    i = torch.arange(n, dtype=torch.float64)
    x = torch.sin(0.7 * i + 0.013 * i * i + phase).reshape(shape)
    if len(shape) >= 2:
        return x / math.sqrt(n / shape[0])
    if key.endswith('weight') or key.endswith('running_var'):
        return 1.0 + 0.3 * x
    return 0.3 * x


def deterministic_image(shape) -> torch.Tensor:
    """A float64 input of ``shape`` in ``[-1, 1]``: ``sin(0.7 i + 0.013 i^2)`` (no RNG, recomputed by the tests)."""
    i = torch.arange(int(math.prod(shape)), dtype=torch.float64)
    return torch.sin(0.7 * i + 0.013 * i * i).reshape(tuple(shape))


def deterministic_state_dict(shapes) -> 'OrderedDict[str, torch.Tensor]':
    """``{key: deterministic_tensor(key, shape)}`` for ``shapes = {key: shape}``."""
    return OrderedDict((k, deterministic_tensor(k, s)) for k, s in shapes.items())


def pack_shapes(shapes) -> torch.Tensor:
    """``{key: shape}`` -> gzip-compressed JSON as a uint8 tensor (loadable with ``weights_only=True``)."""
    data = gzip.compress(json.dumps([[k, list(s)] for k, s in shapes.items()], separators=(',', ':')).encode(),
                         mtime=0)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).clone()


def unpack_shapes(packed: torch.Tensor) -> 'OrderedDict[str, tuple]':
    """Inverse of :func:`pack_shapes`."""
    return OrderedDict((k, tuple(s)) for k, s in json.loads(gzip.decompress(bytes(packed.tolist()))))


def checksum(state) -> float:
    return float(sum(v.double().sum() for v in state.values()))


class _AnyBN(torch.nn.modules.batchnorm._BatchNorm):

    def _check_input_dim(self, input):
        pass


def _install_stubs():
    """Minimal detectron2 stand-ins for the imports of the two official model files."""

    def configurable(init_func=None, **_):
        return init_func

    class Registry(dict):

        def __init__(self, name):
            super().__init__()

        def register(self, obj=None):
            if obj is None:
                return lambda o: self.__setitem__(o.__name__, o) or o
            self[obj.__name__] = obj
            return obj

        def get(self, name):
            return self[name]

    from collections import namedtuple
    shape_spec = namedtuple('ShapeSpec', ['channels', 'height', 'width', 'stride'], defaults=[None] * 4)
    class CNNBlockBase(torch.nn.Module):

        def __init__(self, in_channels, out_channels, stride):
            super().__init__()
            self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

        def freeze(self):
            return self

    class D2Conv2d(torch.nn.Conv2d):
        """detectron2's Conv2d: a Conv2d carrying its ``norm`` (keys ``conv.weight``, ``conv.norm.*``)."""

        def __init__(self, *args, norm=None, activation=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.norm, self.activation = norm, activation

    mods = {name: types.ModuleType(name) for name in (
        'detectron2', 'detectron2.config', 'detectron2.utils', 'detectron2.utils.registry', 'detectron2.layers',
        'detectron2.modeling', 'fvcore', 'fvcore.nn', 'fvcore.nn.weight_init')}
    mods['detectron2.layers'].CNNBlockBase = CNNBlockBase
    mods['detectron2.layers'].Conv2d = D2Conv2d
    mods['detectron2.layers'].DeformConv = mods['detectron2.layers'].ModulatedDeformConv = None
    mods['fvcore.nn.weight_init'].c2_msra_fill = lambda m: torch.nn.init.kaiming_normal_(m.weight, mode='fan_out')
    mods['fvcore.nn'].weight_init = mods['fvcore.nn.weight_init']
    mods['detectron2.config'].configurable = configurable
    mods['detectron2.utils.registry'].Registry = Registry
    mods['detectron2.layers'].ShapeSpec = shape_spec
    mods['detectron2.modeling'].SEM_SEG_HEADS_REGISTRY = Registry('sem_seg_heads')
    mods['detectron2.modeling'].BACKBONE_REGISTRY = Registry('backbone')
    mods['detectron2.modeling'].Backbone = torch.nn.Module
    mods['detectron2.modeling'].ShapeSpec = shape_spec
    sys.modules.update(mods)
    torch.nn.SyncBatchNorm = _AnyBN
    # The official code calls ``.float()`` to leave AMP for the softmax / k-means update / LayerNorm; in a
    # float64 run that would be a downcast to float32 (and a dtype clash with the float64 BatchNorm), so
    # ``.float()`` keeps float64 tensors as they are. Nothing else of the official code is changed.
    float_ = torch.Tensor.float
    torch.Tensor.float = lambda self, *a, **k: self if self.dtype == torch.float64 else float_(self, *a, **k)
    return shape_spec


def _load_official(repo: str, workdir: str):
    files = ['kmax_deeplab/modeling/pixel_decoder/kmax_pixel_decoder.py',
             'kmax_deeplab/modeling/transformer_decoder/kmax_transformer_decoder.py',
             'kmax_deeplab/modeling/backbone/convnext.py',
             'kmax_deeplab/modeling/backbone/resnet.py']
    root = os.path.join(workdir, 'kmax_official')
    for sub in ('', 'modeling', 'modeling/pixel_decoder', 'modeling/transformer_decoder', 'modeling/backbone'):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
        open(os.path.join(root, sub, '__init__.py'), 'w').close()
    for f in files:
        text = subprocess.run(['git', f'--git-dir={repo}', 'show', f'HEAD:{f}'], check=True,
                              capture_output=True, text=True).stdout
        with open(os.path.join(root, f.split('kmax_deeplab/', 1)[1]), 'w') as fh:
            fh.write(text)
    sys.path.insert(0, workdir)
    from kmax_official.modeling.pixel_decoder import kmax_pixel_decoder as pd
    from kmax_official.modeling.transformer_decoder import kmax_transformer_decoder as td
    from kmax_official.modeling.backbone import resnet as rn
    from kmax_official.modeling.backbone import convnext as cn
    return pd, td, rn, cn


def _fill(module):
    shapes = OrderedDict((k, tuple(v.shape)) for k, v in module.state_dict().items())
    state = deterministic_state_dict(shapes)
    module.load_state_dict(state, strict=True)
    return pack_shapes(shapes), checksum(state)


def _shapes(module, prefix=''):
    return OrderedDict((prefix + k, list(v.shape)) for k, v in module.state_dict().items())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repo', default='/work/.mirror/bytedance+kmax-deeplab/repo')
    parser.add_argument('--scratch', default='/tmp/scratch-kmax')
    parser.add_argument('--out', default='tests/data/fixtures')
    args = parser.parse_args()
    sys.path.insert(0, args.scratch)
    shape_spec = _install_stubs()
    commit = subprocess.run(['git', f'--git-dir={args.repo}', 'rev-parse', 'HEAD'], check=True,
                            capture_output=True, text=True).stdout.strip()
    pd, td, rn, cn = _load_official(args.repo, tempfile.mkdtemp(prefix='kmax_official_'))
    torch.set_default_dtype(torch.float64)
    os.makedirs(args.out, exist_ok=True)
    gen = torch.Generator().manual_seed(0)

    # 1. one k-means layer (bottleneck 256 and FFN 2048 are hard-coded in the official layer).
    layer = td.kMaXTransformerLayer(num_classes=6, in_channel_pixel=8, in_channel_query=16).double()
    shapes, csum = _fill(layer)
    pixel = torch.randn(2, 8, 5, 7, generator=gen)
    query = torch.randn(2, 16, 8, generator=gen)
    fixture = dict(commit=commit, shapes=shapes, checksum=csum, pixel=pixel, query=query,
                   config=dict(num_classes=6, in_channels_pixel=8, in_channels_query=16))
    for mode in ('eval', 'train'):
        layer.train(mode == 'train')
        with torch.no_grad():
            q, pred = layer(pixel, query)
        fixture[mode] = dict(query=q, class_logits=pred['class_logits'], mask_logits=pred['mask_logits'])
        used = pred['mask_logits'].flatten(2).argmax(1).unique().numel()
        print(f'layer, {mode}: {used} of {query.shape[-1]} centres receive pixels (argmax over the centres)')
    torch.save(fixture, os.path.join(args.out, 'kmax_layer.pt'))

    # 2. pixel decoder, small widths, at its training size 65 x 33 (query shapes 3x2 / 5x3 / 9x5 / 17x9).
    size = (65, 33)
    in_ch = dict(res2=4, res3=8, res4=8, res5=16)
    strides = dict(res2=4, res3=8, res4=16, res5=32)
    input_shape = {k: shape_spec(channels=c, stride=strides[k]) for k, c in in_ch.items()}
    # the axial blocks have 8 heads (hard-coded): their widths must be multiples of 8
    dec_cfg = dict(dec_layers=[1, 2, 1, 1], dec_channels=[16, 8, 4, 4],
                   layer_types=['axial', 'axial', 'bottleneck', 'bottleneck'], drop_path_prob=0.0,
                   spatial_shape=list(size))
    pixdec = pd.kMaXPixelDecoder(input_shape, **dec_cfg).double().eval()
    shapes, csum = _fill(pixdec)
    feats = {k: torch.randn(1, c, size[0] // strides[k] + 1, size[1] // strides[k] + 1, generator=gen)
             for k, c in in_ch.items()}
    with torch.no_grad():
        pan, sem, multi = pixdec.forward_features(feats)
    torch.save(dict(commit=commit, shapes=shapes, checksum=csum, feats=[feats[k] for k in strides],
                    config=dict(in_channels=[in_ch[k] for k in strides], **{
                        k: v for k, v in dec_cfg.items() if k in ('dec_layers', 'dec_channels', 'layer_types')}),
                    panoptic_features=pan, multi_scale_features=multi),
               os.path.join(args.out, 'kmax_pixel_decoder.pt'))

    # 3. transformer decoder (query width 256 is hard-coded) on small maps.
    dec = td.kMaXTransformerDecoder(dec_layers=[2, 2, 2], in_channels=[16, 8, 8, 8], num_classes=4,
                                    num_queries=10, drop_path_prob=0.0, add_aux_semantic_pred=False,
                                    use_aux_semantic_decoder=True, input_shape_from_backbone=None).double().eval()
    shapes, csum = _fill(dec)
    maps = [torch.randn(1, c, *s, generator=gen) for c, s in ((16, (3, 2)), (8, (5, 3)), (8, (9, 5)))]
    pan = torch.randn(1, 8, 17, 9, generator=gen)
    with torch.no_grad():
        out = dec(maps, pan, None)
        dec.train()
        out_train = dec(maps, pan, None)
    torch.save(dict(commit=commit, shapes=shapes, checksum=csum, multi_scale_features=maps, panoptic_features=pan,
                    config=dict(num_classes=4, in_channels=[16, 8, 8, 8], num_queries=10),
                    pred_logits=out['pred_logits'], pred_masks=out['pred_masks'],
                    aux_pred_logits=torch.stack([a['pred_logits'] for a in out['aux_outputs']]),
                    aux_pred_masks_last=out['aux_outputs'][-1]['pred_masks'],
                    train=dict(pred_logits=out_train['pred_logits'], pred_masks=out_train['pred_masks'],
                               aux_pred_logits=torch.stack([a['pred_logits'] for a in out_train['aux_outputs']]))),
               os.path.join(args.out, 'kmax_decoder.pt'))

    # 4. the authors' ConvNeXt (TF-style padding, no output norms), tiny widths, odd non-square input.
    convnext_cfg = dict(depths=[1, 1, 1, 1], dims=[4, 8, 16, 32])
    convnext = cn.ConvNeXt(**convnext_cfg).double().eval()
    shapes, csum = _fill(convnext)
    image_shape = (1, 3, 65, 75)
    with torch.no_grad():
        outs = convnext(deterministic_image(image_shape))
    torch.save(dict(commit=commit, shapes=shapes, checksum=csum, config=convnext_cfg, image_shape=list(image_shape),
                    outs=[outs[f'res{i}'] for i in range(2, 6)]),
               os.path.join(args.out, 'kmax_convnext.pt'))
    print('convnext outputs', [tuple(outs[f'res{i}'].shape) for i in range(2, 6)])

    # 5. key / shape layout and parameter counts of the official R50 COCO head.
    torch.set_default_dtype(torch.float32)
    r50 = dict(res2=256, res3=512, res4=1024, res5=2048)
    r50_shape = {k: shape_spec(channels=c, stride=strides[k]) for k, c in r50.items()}
    pixdec = pd.kMaXPixelDecoder(r50_shape, dec_layers=[1, 5, 1, 1], dec_channels=[512, 256, 128, 64],
                                 layer_types=['axial', 'axial', 'bottleneck', 'bottleneck'], drop_path_prob=0.0,
                                 spatial_shape=[1281, 1281])
    dec = td.kMaXTransformerDecoder(dec_layers=[2, 2, 2], in_channels=[2048, 1024, 512, 256], num_classes=133,
                                    num_queries=128, drop_path_prob=0.2, add_aux_semantic_pred=True,
                                    use_aux_semantic_decoder=True, input_shape_from_backbone=r50_shape)
    # the official R50 backbone (custom_bn_build_resnet_backbone with kmax_r50.yaml: SyncBN, STRIDE_IN_1X1 False)
    backbone = rn.ResNet(rn.BasicStem(3, 64, norm='syncbn'),
                         rn.ResNet.make_default_stages(50, stride_in_1x1=False, norm='syncbn'),
                         out_features=['res2', 'res3', 'res4', 'res5'])
    keys = OrderedDict()
    keys.update(_shapes(backbone, 'backbone.'))
    keys.update(_shapes(pixdec, 'sem_seg_head.pixel_decoder.'))
    keys.update(_shapes(dec, 'sem_seg_head.predictor.'))

    def count(m, exclude=None):
        return sum(p.numel() for n, p in m.named_parameters() if not (exclude and n.startswith(exclude)))

    convnext_t = cn.ConvNeXt(depths=[3, 3, 9, 3], dims=[96, 192, 384, 768], drop_path_rate=0.3)
    convnext_keys = _shapes(convnext_t, 'backbone.')
    info = dict(commit=commit, convnext_tiny_backbone_keys=convnext_keys, source='bytedance/kmax-deeplab configs/coco/panoptic_segmentation/kmax_r50.yaml',
                params=dict(pixel_decoder=count(pixdec), transformer_decoder=count(dec),
                            transformer_decoder_without_aux_semantic=count(dec, '_auxiliary_semantic_predictor')),
                keys=keys)
    with open(os.path.join(args.out, 'kmax_r50_keys.json.gz'), 'wb') as fh:
        fh.write(gzip.compress(json.dumps(info, separators=(',', ':')).encode(), mtime=0))
    print(json.dumps(info['params']))


if __name__ == '__main__':
    main()
