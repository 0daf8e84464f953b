"""configs/hcformer: every config parses and builds with its toolkit's registry (the full-size ones without
training or weight loading), the recipes hold the paper's values, the parameter counts match the paper's
Tables 1-3, and the three toy configs train, validate and test end to end (tools/train.py + tools/test.py,
2 iterations) with PQ / segm AP / mIoU in the results."""
import pytest
from conftest import REPO
from e2e import E2E_ITERS, build, nparams, check_metrics, last_evaluation
from mmengine.config import Config

pytest.importorskip('mmdet.models')
pytest.importorskip('mmseg.models')

HC = REPO / 'configs' / 'hcformer'
CONFIGS = sorted(p.name for p in HC.glob('*.py'))
TOY = {
    'hcformer_r18_1xb4-toy_coco-panoptic.py': ['coco_panoptic/PQ', 'coco_panoptic/SQ', 'coco/segm_mAP'],
    'hcformer_r18_1xb4-toy_coco.py': ['coco/segm_mAP', 'coco/bbox_mAP'],
    'hcformer_r18_1xb8-toy_ade20k-256x256.py': ['mIoU', 'aAcc'],
}
HC_FCN = 'hc-fcn-32s_r101_4xb2-80k_cityscapes-512x1024.py'
FULL = [c for c in CONFIGS if c not in TOY and c != HC_FCN]
# Paper Tables 1-3 give parameters rounded to 1M: a count within +-0.5M of the published value matches.
PAPER_PARAMS_M = {
    'hcformer_r50_8xb2-lsj-50e_coco-panoptic.py': 38,  # Table 1 (and Tables 2, 4, 5, II)
    'hcformer_r50_8xb2-lsj-50e_coco.py': 38,  # Table 2
    'hcformer_r50_8xb2-160k_ade20k-512x512.py': 38,  # Table V / VII (ADE20K, 150 classes)
    'hcformerplus_r50_8xb2-lsj-100e_coco-panoptic.py': 46,  # Table 1
    'hcformer_swin-s-p4-w7-224_8xb2-lsj-50e_coco-panoptic.py': 62,  # Table 1, Table VI
}


def test_expected_configs_present():
    assert set(TOY) <= set(CONFIGS)
    for name in ('hcformer_r50_8xb2-lsj-50e_coco-panoptic.py', 'hcformer_r50_8xb2-lsj-50e_coco.py',
                 'hcformer_swin-s-p4-w7-224_8xb2-lsj-50e_coco-panoptic.py',
                 'hcformer_swin-s-p4-w7-224_8xb2-lsj-50e_coco.py', 'hcformer_r50_8xb2-160k_ade20k-512x512.py',
                 'hcformer_swin-s_8xb2-160k_ade20k-512x512.py', HC_FCN):
        assert name in CONFIGS


@pytest.mark.parametrize('name', FULL)
def test_full_configs_build_with_paper_settings(name):
    cfg = Config.fromfile(str(HC / name))
    assert 'mmcluster' in cfg.custom_imports['imports']
    model = build(cfg)
    head = model.panoptic_head if hasattr(model, 'panoptic_head') else model.decode_head
    assert type(model.neck).__name__ == 'HCFormerNeck' and model.neck.level == 3
    assert [m.scale.item() for m in model.neck.clustering_layers] == pytest.approx([0.1] * 3)
    assert {m.embed_dims for m in model.neck.clustering_layers} == {128}
    assert len(head.transformer_decoder.layers) == 8 and head.num_queries == 100
    assert head.loss_scale.loss_weight == 0.1 and head.loss_scale.mode == 'abs_of_sum'
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys['neck'].lr_mult == 0.1
    assert cfg.optim_wrapper.optimizer.lr == 1e-4 and cfg.optim_wrapper.optimizer.weight_decay == 0.05
    if 'r50' in name:
        assert type(model.backbone).__name__ == 'HCResNet' and model.backbone.dcn_downsampling
        assert model.neck.coarse_inputs == 'first_block'
    if name in PAPER_PARAMS_M:
        n = nparams(model)
        assert abs(n / 1e6 - PAPER_PARAMS_M[name]) < 0.5, f'{name}: {n} parameters'
    if 'coco' in name:
        assert cfg.train_cfg.max_iters == (737500 if 'hcformerplus' in name else 368750)


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
    work_dir = e2e.train(HC / name)
    check_metrics(last_evaluation(work_dir), TOY[name])
    check_metrics(e2e.test(HC / name, work_dir / f'iter_{E2E_ITERS}.pth'), TOY[name])
