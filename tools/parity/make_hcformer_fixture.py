"""Produce HCFormer's parity fixtures with the official code (run by hand; nothing here runs in the tests).

Needs the official repository DensoITLab/HCFormer at commit 3a714166bec597ed97b0c2d6288bd1422e5622aa (the
``hcformer/`` package) and timm 0.6.x (``hcswin.py`` imports ``timm.models.layers``), both outside the
project's environment::

    git clone https://github.com/DensoITLab/HCFormer /tmp/scratch-hcformer/src
    git -C /tmp/scratch-hcformer/src checkout 3a714166bec597ed97b0c2d6288bd1422e5622aa
    .venv/bin/pip install --target /tmp/scratch-hcformer timm==0.6.13 --no-deps
    .venv/bin/python tools/parity/make_hcformer_fixture.py --official /tmp/scratch-hcformer/src \\
        --timm /tmp/scratch-hcformer --out tests/data/fixtures

detectron2 and fvcore are not installed: the few names the official modules import from them are replaced by
stand-ins defined below, which matter only for the parameter names and shapes they create (``Conv2d`` is a
``nn.Conv2d``; ``ModulatedDeformConv`` and ``FrozenBatchNorm2d`` hold the parameters / buffers detectron2's
classes hold -- ``weight``, ``bias`` / ``weight``, ``bias``, ``running_mean``, ``running_var`` -- and are never
run; ``configurable`` and the registries pass through). The official code computes everything that is stored.

Writes:

* ``hcformer_official_keys.json.gz``: every state-dict key and shape of the official models, built from the
  official classes on the meta device (no weights): HCFormer+ Swin-L COCO panoptic (the released checkpoint:
  ``configs/coco/panoptic-segmentation/swin/hcformer+_swin_large_IN21k_384_bs16_200ep.yaml``), HCFormer R50
  and HCFormer+ R50 COCO panoptic. ``criterion.empty_weight`` (the criterion's only buffer, ``[K + 1]``) is
  added by hand, as it is the only key of the official ``SetCriterion``.
* ``hcformer_parity.pt`` (float64 results; the tiny model's weights and image are stored as float16 values,
  which float64 represents exactly, and everything is computed in float64):

  - ``clustering``: official ``Clustering(6, 10, emb_dim=5)`` with random LayerNorm affines and
    ``temp = -0.3``, its state dict (official names), inputs ``fine [1, 6, 6, 8]``, ``coarse [1, 10, 3, 4]`` and
    output assignment ``[1, 9, 6, 8]``;
  - ``decode``: official ``upsampling(preds, assigns)`` (the decoder's Eq. 5 chain) on ``preds [1, 3, 2, 3]``
    through two random assignment maps (coarse-to-fine ``[1, 9, 4, 6]``, ``[1, 9, 8, 12]``);
  - ``model``: a tiny official HCFormer+ with HCSwin (``embed_dim 3``, depths ``[2, 2, 2, 1]``, heads
    ``[1, 1, 2, 2]``, window 2, level 3, clustering ``emb_dim 8``; the encoder replaced by
    ``TransformerEnc(24, 32, 4 heads, 1 layer, FFN 32)`` and the decoder ``HCTransformerDecoder`` with
    ``hidden_dim 16``, 2 heads, FFN 16, 2 layers, 4 queries, 3 classes), its full state dict with the
    official keys (``backbone.*``, ``sem_seg_head.predictor.*``, ``criterion.empty_weight``), one
    ``[1, 3, 32, 64]`` input and, in eval mode, the assignments, ``res5`` (after the encoder) and the
    decoder outputs (class logits, decoded masks of the last layer, stride-32 masks of the others).
"""
import argparse
import gzip
import json
import sys
import types
from pathlib import Path

import torch
import torch.nn as nn

COMMIT = '3a714166bec597ed97b0c2d6288bd1422e5622aa'


def _install_stand_ins(official: Path) -> None:
    def module(name, **attrs):
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        sys.modules[name] = mod
        return mod

    class Registry:
        def __init__(self, name):
            self.name = name

        def register(self, obj=None):
            return obj if obj is not None else (lambda o: o)

    class Conv2d(nn.Conv2d):
        def __init__(self, *args, norm=None, activation=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.norm, self.activation = norm, activation

    class ModulatedDeformConv(nn.Module):  # detectron2's parameters (never run here)
        def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                     deformable_groups=1, bias=True, norm=None, activation=None):
            super().__init__()
            k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
            self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *k))
            self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    class FrozenBatchNorm2d(nn.Module):  # detectron2's buffers (never run here)
        def __init__(self, num_features, eps=1e-5):
            super().__init__()
            self.eps = eps
            for name, fill in (('weight', 1), ('bias', 0), ('running_mean', 0), ('running_var', 1)):
                self.register_buffer(name, torch.full((num_features, ), float(fill)))

        @classmethod
        def convert_frozen_batchnorm(cls, module):
            if isinstance(module, nn.BatchNorm2d):
                return cls(module.num_features, module.eps)
            for name, child in module.named_children():
                new = cls.convert_frozen_batchnorm(child)
                if new is not child:
                    module.add_module(name, new)
            return module

    module('detectron2')
    module('detectron2.layers', Conv2d=Conv2d, ModulatedDeformConv=ModulatedDeformConv,
           FrozenBatchNorm2d=FrozenBatchNorm2d, ShapeSpec=object)
    module('detectron2.modeling', BACKBONE_REGISTRY=Registry('BACKBONE'), Backbone=nn.Module, ShapeSpec=object,
           SEM_SEG_HEADS_REGISTRY=Registry('SEM_SEG_HEADS'))
    module('detectron2.config', configurable=lambda f: f)
    module('detectron2.utils')
    module('detectron2.utils.registry', Registry=Registry)
    module('fvcore')
    module('fvcore.nn')
    module('fvcore.nn.weight_init', c2_xavier_fill=lambda m: (nn.init.kaiming_uniform_(m.weight, a=1),
                                                              nn.init.zeros_(m.bias)))
    module('turtle', down=None)  # ``from turtle import down`` in hcswin.py (unused)
    # the packages without their __init__ (which import datasets, detectron2 trainers, ...)
    for pkg in ('hcformer', 'hcformer.modeling', 'hcformer.modeling.backbone',
                'hcformer.modeling.transformer_decoder'):
        module(pkg, __path__=[str(official / pkg.replace('.', '/'))])


def _swin_kwargs(embed_dim, depths, num_heads, window_size, aux):
    return dict(pretrain_img_size=384, patch_size=4, in_chans=3, embed_dim=embed_dim, depths=depths,
                num_heads=num_heads, window_size=window_size, mlp_ratio=4.0, qkv_bias=True, qk_scale=None,
                drop_rate=0.0, attn_drop_rate=0.0, drop_path_rate=0.3, norm_layer=nn.LayerNorm, ape=False,
                patch_norm=True, out_indices=(0, 1, 2, 3), use_checkpoint=False, hierarchical_level=3, aux=aux)


def _decoder(dec, in_channels, num_classes, hidden, queries, heads, ffn, layers):
    return dec.HCTransformerDecoder(in_channels, True, num_classes=num_classes, hidden_dim=hidden,
                                    num_queries=queries, nheads=heads, dim_feedforward=ffn, dec_layers=layers,
                                    pre_norm=False, mask_dim=hidden, enforce_input_project=False)


def _full_state(backbone, predictor, num_classes):
    sd = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    sd.update({f'sem_seg_head.predictor.{k}': v for k, v in predictor.state_dict().items()})
    sd['criterion.empty_weight'] = torch.ones(num_classes + 1)
    return sd


def official_key_lists(swin, resnet, dec):
    """Keys and shapes of the official COCO panoptic models (meta device: nothing is allocated)."""
    lists = {}
    linspace = torch.linspace  # the stochastic-depth rates are read with .item(): keep them on the CPU
    torch.linspace = lambda *a, **kw: linspace(*a, **dict(kw, device='cpu'))
    try:
        with torch.device('meta'):
            _official_models(swin, resnet, dec, lists)
    finally:
        torch.linspace = linspace
    return {name: {k: list(v.shape) for k, v in sd.items()} for name, sd in lists.items()}


def _official_models(swin, resnet, dec, lists):
    import torchvision.models as M
    if True:
        # configs/coco/panoptic-segmentation/swin/hcformer+_swin_large_IN21k_384_bs16_200ep.yaml (DEC_LAYERS 9
        # = 8 layers + the initial prediction; CONVS_DIM 256 = the encoder's output; 200 queries)
        bb = swin.SwinTransformer(**_swin_kwargs(192, [2, 2, 18, 2], [6, 12, 24, 48], 12, 'transformer'))
        lists['hcformerplus_swin-l_coco-panoptic'] = _full_state(bb, _decoder(dec, 256, 133, 256, 200, 8, 2048, 8),
                                                                 133)
        orig = M.resnet50
        M.resnet50 = lambda pretrained=False, **kw: orig(weights=None, **kw)  # no download
        try:
            for name, aux, in_ch in (('hcformer_r50_coco-panoptic', None, 2048),
                                     ('hcformerplus_r50_coco-panoptic', 'transformer', 256)):
                # configs/coco/panoptic-segmentation/hcformer{,+}_R50_bs16_{50,100}ep.yaml (TEMPERATURE 0.1)
                bb = resnet.HCResNet(50, 3, 0.1, 128, 'deform', aux)
                lists[name] = _full_state(bb, _decoder(dec, in_ch, 133, 256, 100, 8, 2048, 8), 133)
        finally:
            M.resnet50 = orig


def _randomise(module, gen):
    """Non-trivial values for every parameter and LayerNorm / GroupNorm affine (official init leaves zeros)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith('temp'):
                continue
            scale = 0.3 if p.dim() > 1 else 0.1
            base = 1.0 if name.endswith('weight') and p.dim() == 1 else 0.0
            p.copy_((base + scale * torch.randn(p.shape, generator=gen, dtype=torch.float32)).half())


def clustering_case(utils, gen):
    torch.manual_seed(0)
    mod = utils.Clustering(6, 10, 5).double()
    _randomise(mod, gen)
    with torch.no_grad():
        mod.temp.fill_(-0.3)  # |temp| is what the official code uses
    fine = torch.randn(1, 6, 6, 8, generator=gen, dtype=torch.float64)
    coarse = torch.randn(1, 10, 3, 4, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        out = mod(fine, coarse)
    return dict(state_dict={k: v.clone() for k, v in mod.state_dict().items()}, fine=fine, coarse=coarse,
                assign=out)


def decode_case(dec, gen):
    preds = torch.randn(1, 3, 2, 3, generator=gen, dtype=torch.float64)
    assigns = [torch.randn(1, 9, h, w, generator=gen, dtype=torch.float64).softmax(1) for h, w in ((4, 6), (8, 12))]
    return dict(preds=preds, assigns=assigns, out=dec.upsampling(preds, assigns))


def model_case(swin, utils, dec, gen):
    torch.manual_seed(0)
    bb = swin.SwinTransformer(**_swin_kwargs(3, [2, 2, 2, 1], [1, 1, 2, 2], 2, 'none'))
    for i, layer in enumerate(bb.layers[:3]):  # smaller clustering embedding than the hard-coded 128
        layer.clustering = utils.Clustering(3 * 2 ** i, 6 * 2 ** i, 8)
    bb.aux = utils.TransformerEnc(24, 32, 4, 1, 32)
    predictor = _decoder(dec, 32, 3, 16, 4, 2, 16, 2)
    for m in (bb, predictor):
        _randomise(m, gen)
    for i, layer in enumerate(bb.layers[:3]):
        layer.clustering.temp.data.fill_(torch.tensor((0.1, 0.2, 0.05)[i]).half().item())
    state = {k: v.half() if v.is_floating_point() else v.clone()  # float16 values (exact)
             for k, v in _full_state(bb, predictor, 3).items()}
    image = torch.randn(1, 3, 32, 64, generator=gen, dtype=torch.float32).half()
    bb.double().eval()
    predictor.double().eval()
    with torch.no_grad():
        feats = bb(image.double())
        out = predictor(feats['res5'], feats['res5'], feats['assign'])
    return dict(state_dict=state, image=image, assigns=feats['assign'], res5=feats['res5'],
                pred_logits=out['pred_logits'], pred_masks=out['pred_masks'],
                aux_logits=[o['pred_logits'] for o in out['aux_outputs']],
                aux_masks=[o['pred_masks'] for o in out['aux_outputs']])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--official', required=True, type=Path, help='checkout of DensoITLab/HCFormer')
    parser.add_argument('--timm', help='folder with timm 0.6.x (pip --target)')
    parser.add_argument('--out', default='tests/data/fixtures', type=Path)
    args = parser.parse_args()
    if args.timm:
        sys.path.insert(0, args.timm)
    _install_stand_ins(args.official.resolve())
    from hcformer.modeling.backbone import hcswin as swin
    from hcformer.modeling.backbone import resnet
    from hcformer.modeling.backbone import utils
    from hcformer.modeling.transformer_decoder import hcformer_decoder as dec

    args.out.mkdir(parents=True, exist_ok=True)
    keys = dict(source=f'DensoITLab/HCFormer@{COMMIT}', models=official_key_lists(swin, resnet, dec))
    with gzip.open(args.out / 'hcformer_official_keys.json.gz', 'wt') as f:
        f.write(json.dumps(keys, separators=(',', ':')))
    gen = torch.Generator().manual_seed(0)
    fixture = dict(source=f'DensoITLab/HCFormer@{COMMIT}', clustering=clustering_case(utils, gen),
                   decode=decode_case(dec, gen), model=model_case(swin, utils, dec, gen))
    # the legacy format: no per-tensor zip records (a third smaller for these ~200 small tensors)
    torch.save(fixture, args.out / 'hcformer_parity.pt', _use_new_zipfile_serialization=False)
    for name in ('hcformer_official_keys.json.gz', 'hcformer_parity.pt'):
        print(args.out / name, (args.out / name).stat().st_size, 'bytes')


if __name__ == '__main__':
    main()
