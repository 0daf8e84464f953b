"""configs/hcformer: every config parses and builds with its toolkit's registry (the full-size ones on the meta
device, without training or weight loading), the recipes hold the official values, the parameter counts match the
paper's Tables 1-3 (``tests/data/published.yml``), the optimiser built from each config gives every norm layer no
weight decay (official recipe), and the three toy configs train, validate and test end to end (tools/train.py +
tools/test.py, 2 iterations) with PQ / segm AP / mIoU in the results."""
import pytest
import torch
from conftest import load_tool
from e2e import build, family_configs, nparams, published
from mmengine.config import Config

HC, CONFIGS = family_configs('hcformer', toolkits=('mmdet', 'mmseg'))
TOY = {
    'hcformer_r18_1xb4-toy_coco-panoptic.py': ['coco_panoptic/PQ', 'coco_panoptic/SQ', 'coco/segm_mAP'],
    'hcformer_r18_1xb4-toy_coco.py': ['coco/segm_mAP', 'coco/bbox_mAP'],
    'hcformer_r18_1xb8-toy_ade20k-256x256.py': ['mIoU', 'aAcc'],
}
HC_FCN = 'hc-fcn-32s_r101_4xb2-80k_cityscapes-512x1024.py'
SWIN_L = 'hcformerplus_swin-l-p4-w12-384-in21k_16xb1-lsj-200e_coco-panoptic.py'
FULL = [c for c in CONFIGS if c not in TOY and c != HC_FCN]
PUBLISHED = published('hcformer')
# config -> (task, model) of the published table; the paper gives parameters rounded to 1M, so a count within
# +-0.5M matches. The ADE20K R50 model differs from the COCO one only in its classifier (151 vs 134 outputs).
PAPER_PARAMS = {
    'hcformer_r50_8xb2-lsj-50e_coco-panoptic.py': ('coco_panoptic', 'hcformer_r50'),
    'hcformer_r50_8xb2-lsj-50e_coco.py': ('coco_instance', 'hcformer_r50'),
    'hcformer_r50_8xb2-160k_ade20k-512x512.py': ('coco_panoptic', 'hcformer_r50'),
    'hcformerplus_r50_8xb2-lsj-100e_coco-panoptic.py': ('coco_panoptic', 'hcformerplus_r50'),
    'hcformer_swin-s-p4-w7-224_8xb2-lsj-50e_coco-panoptic.py': ('coco_panoptic', 'hcformer_swin-s'),
    SWIN_L: ('coco_panoptic', 'hcformerplus_swin-l'),
}
# config -> official model whose exact parameter count (counted from the official module definitions) it must have
OFFICIAL_PARAMS = {
    'hcformer_r50_8xb2-lsj-50e_coco-panoptic.py': 'hcformer_r50_coco-panoptic',
    'hcformerplus_r50_8xb2-lsj-100e_coco-panoptic.py': 'hcformerplus_r50_coco-panoptic',
    SWIN_L: 'hcformerplus_swin-l_coco-panoptic',
}
NORMS = (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.modules.batchnorm._BatchNorm)


def test_expected_configs_present():
    assert set(TOY) <= set(CONFIGS)
    for name in ('hcformer_r50_8xb2-lsj-50e_coco-panoptic.py', 'hcformer_r50_8xb2-lsj-50e_coco.py',
                 'hcformer_swin-s-p4-w7-224_8xb2-lsj-50e_coco-panoptic.py', SWIN_L,
                 'hcformer_swin-s-p4-w7-224_8xb2-lsj-50e_coco.py', 'hcformer_r50_8xb2-160k_ade20k-512x512.py',
                 'hcformer_swin-s_8xb2-160k_ade20k-512x512.py', HC_FCN):
        assert name in CONFIGS


def check_optimiser(cfg, model):
    """Official recipe: norms and query / level embeddings without decay; the clustering modules (neck) at the
    backbone's lr (x0.1) with decay on their projections."""
    from mmengine.optim import build_optim_wrapper
    groups = build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups
    group = {id(p): g for g in groups for p in g['params']}
    norms = [(f'{m_name}.{n}', p) for m_name, m in model.named_modules() if isinstance(m, NORMS)
             for n, p in m.named_parameters(recurse=False) if p.requires_grad]
    assert any('clustering_layers' in n for n, _ in norms)
    decayed = [n for n, p in norms if group[id(p)]['weight_decay'] != 0]
    assert not decayed, f'norm parameters with weight decay: {decayed[:8]}'
    for n, p in model.named_parameters():
        if any(k in n for k in ('query_embed', 'query_feat', 'level_embed')):
            assert group[id(p)]['weight_decay'] == 0, n
        if n.startswith('neck.'):
            assert group[id(p)]['lr'] == pytest.approx(1e-5), n
        if n.endswith('fine_emb.weight'):
            assert group[id(p)]['weight_decay'] == pytest.approx(0.05), n


@pytest.mark.parametrize('name', FULL)
def test_full_configs_build_with_paper_settings(name):
    cfg = Config.fromfile(str(HC / name))
    assert 'mmcluster' in cfg.custom_imports['imports']
    model = load_tool('tools/model_converters/hcformer2mmcluster.py').build_model(str(HC / name), meta=True)
    head = model.panoptic_head if hasattr(model, 'panoptic_head') else model.decode_head
    assert type(model.neck).__name__ == 'HCFormerNeck' and model.neck.level == 3
    assert [cfg.model.neck.init_scale, cfg.model.neck.embed_dims] == [0.1, 128]
    assert len(head.transformer_decoder.layers) == 8 and head.num_queries == (200 if name == SWIN_L else 100)
    assert head.loss_scale.loss_weight == 0.1 and head.loss_scale.mode == 'abs_of_sum'
    assert cfg.optim_wrapper.optimizer.lr == 1e-4 and cfg.optim_wrapper.optimizer.weight_decay == 0.05
    check_optimiser(cfg, model)
    if 'r50' in name:
        assert type(model.backbone).__name__ == 'HCResNet' and model.backbone.dcn_downsampling
        assert model.neck.coarse_inputs == 'first_block'
    if 'swin' in name:  # the official HCSwin pairing
        assert type(model.backbone).__name__ == 'HCSwinTransformer' and model.backbone.pair_outs
        assert model.neck.coarse_inputs == 'patch_merging'
    assert model.neck.with_encoder == name.startswith('hcformerplus')
    if name in PAPER_PARAMS:
        task, key = PAPER_PARAMS[name]
        n = nparams(model)
        assert abs(n / 1e6 - PUBLISHED[task][key]['params']) < 0.5, f'{name}: {n} parameters'
    if name in OFFICIAL_PARAMS:
        assert nparams(model) == PUBLISHED['official_params'][OFFICIAL_PARAMS[name]]
    if 'coco' in name:
        epochs = 200 if name == SWIN_L else 100 if name.startswith('hcformerplus') else 50
        assert cfg.train_cfg.max_iters == 368750 * epochs // 50  # 7,375 iterations per epoch at batch 16


def test_r50_panoptic_parameter_breakdown():
    """38,440,483 parameters: ResNet-50 23.51M + official DCNv2 downsampling 0.27M, clustering 0.70M, head 13.96M."""
    model = build(Config.fromfile(str(HC / 'hcformer_r50_8xb2-lsj-50e_coco-panoptic.py')))
    assert nparams(model) == 38_440_483
    assert nparams(model.neck) == 698_883  # sum over the 3 pairs of (C_f + C_c) * 128, + LN, + scales
    assert nparams(model.panoptic_head) == 13_962_886  # 8 decoder layers on a 2048-channel input
    named = dict(model.backbone.named_parameters())
    offsets = sum(p.numel() for n, p in named.items() if 'conv_offset' in n)
    # official DeformConv: a 3x3 offset/mask conv for the 3x3 conv2 (27 outputs) AND the 1x1 shortcut (3 outputs)
    assert offsets == sum(c * 27 * 9 + 27 + 2 * c * 3 * 9 + 3 for c in (128, 256, 512))  # 266,202
    biases = sum(named[f'layer{n}.0.{m}.bias'].numel() for n in (2, 3, 4) for m in ('conv2', 'downsample.0'))
    assert biases == sum(c + 4 * c for c in (128, 256, 512))  # zero-initialised deformable-conv biases


def test_hc_fcn_config():
    """HC-FCN-32s (Appendix E.1): undilated output-stride-32 ResNet-101, FCN logits decoded by the clusters."""
    import torch
    cfg = Config.fromfile(str(HC / HC_FCN))
    model = build(cfg)
    assert type(model.decode_head).__name__ == 'HCFCNHead' and not model.with_auxiliary_head
    assert model.backbone.strides == (1, 2, 2, 2) and model.backbone.dilations == (1, 1, 1, 1)
    model.eval()
    with torch.no_grad():
        logits = model.decode_head(model.extract_feat(torch.randn(1, 3, 64, 96)))
    assert logits.shape == (1, 19, 16, 24)  # stride 4


@pytest.mark.parametrize('name', sorted(TOY))
def test_toy_config_trains_validates_and_tests(name, e2e):
    e2e.train_then_test(HC / name, TOY[name])
