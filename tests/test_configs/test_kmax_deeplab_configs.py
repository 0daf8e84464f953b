"""configs/kmax_deeplab: every config parses and builds with its toolkit's registry (full-size ones without
training or weight loading), the recipes hold the official values (``tests/data/published.yml``), the full
R50 head has the official parameter counts, the ConvNeXt-T head is wired to mmpretrain's ConvNeXt, and the
toy configs train 2 iterations and evaluate end to end."""
import pytest
import torch
from conftest import REPO
from e2e import build, check_metrics, last_evaluation, nparams, published
from mmengine.config import Config

pytest.importorskip('mmdet.models')
pytest.importorskip('mmseg.models')

KMAX = REPO / 'configs' / 'kmax_deeplab'
CONFIGS = sorted(p.name for p in KMAX.glob('*.py'))
TOY = {
    'kmax-deeplab_r18_1xb2-toy_coco-panoptic.py': ['coco_panoptic/PQ', 'coco_panoptic/SQ', 'coco_panoptic/RQ'],
    'cmt-deeplab_r18_1xb2-toy_coco-panoptic.py': ['coco_panoptic/PQ'],
    'kmax-deeplab_r18_1xb4-toy_ade20k-256x256.py': ['mIoU', 'aAcc'],
}
R50_COCO = 'kmax-deeplab_r50_32xb2-150k_coco-panoptic.py'
PUBLISHED = published('kmax_deeplab')


def test_expected_configs_present():
    assert set(TOY) <= set(CONFIGS)
    assert {R50_COCO, 'kmax-deeplab_convnext-t_32xb2-150k_coco-panoptic.py',
            'kmax-deeplab_r50_32xb2-100k_ade20k-641x641.py'} <= set(CONFIGS)


def test_r50_coco_official_recipe_and_parameters():
    cfg = Config.fromfile(str(KMAX / R50_COCO))
    assert 'mmcluster' in cfg.custom_imports['imports']
    with torch.device('meta'):  # shapes and settings only
        model = build(cfg)
    head = model.panoptic_head
    params = PUBLISHED['params']
    assert nparams(head.pixel_decoder) == params['r50_coco_pixel_decoder']
    assert nparams(head.transformer_decoder) == params['r50_coco_transformer_decoder_without_aux_semantic']
    assert nparams(head.transformer_decoder) + nparams(head.aux_semantic_head) == params['r50_coco_transformer_decoder']
    norms = [m for m in head.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert norms and all(isinstance(m, torch.nn.SyncBatchNorm) and m.eps == 1e-3 and m.momentum == 0.01
                         for m in norms)
    assert head.transformer_decoder.num_queries == 128
    w = PUBLISHED['loss_weights']
    crit = head.criterion
    assert (crit.pq_loss.class_weight, crit.pq_loss.dice_weight) == (w['class'], w['dice'])
    assert (crit.mask_id_loss.loss_weight, crit.insdis_loss.loss_weight, crit.aux_semantic_loss.loss_weight) == (
        w['mask_id'], w['insdis'], w['aux_semantic'])
    assert crit.no_object_weight == w['no_object']
    for key, value in PUBLISHED['test_thresholds']['coco'].items():
        assert model.panoptic_fusion_head.test_cfg[key] == value, key
    assert cfg.optim_wrapper.optimizer.lr == 5e-4 and cfg.optim_wrapper.optimizer.weight_decay == 0.05
    assert cfg.train_cfg.max_iters == 150000


def test_convnext_tiny_wiring():
    cfg = Config.fromfile(str(KMAX / 'kmax-deeplab_convnext-t_32xb2-150k_coco-panoptic.py'))
    from mmdet.registry import MODELS
    backbone = MODELS.build(cfg.model.backbone)
    with torch.device('meta'):
        head = MODELS.build(cfg.model.panoptic_head)
    # the authors' ConvNeXt (TF-style padding, no output norms), not mmpretrain's
    assert type(backbone).__name__ == 'KMaXConvNeXt' and list(backbone.out_indices) == [0, 1, 2, 3]
    assert backbone.tf_padding and not any(k.startswith('norm') for k in backbone.state_dict())
    assert list(backbone.channels) == [96, 192, 384, 768] and list(backbone.depths) == [3, 3, 9, 3]
    assert backbone.stages[3][2].drop_path.drop_prob == pytest.approx(0.3)
    # the pixel decoder's input norms (coarsest first) match the ConvNeXt stages
    assert [n.weight.numel() for n in head.pixel_decoder.in_norms] == [768, 384, 192, 96]


def test_ade20k_semantic_config_builds():
    model = build(Config.fromfile(str(KMAX / 'kmax-deeplab_r50_32xb2-100k_ade20k-641x641.py')))
    assert type(model.decode_head).__name__ == 'KMaXSegHead' and model.decode_head.num_classes == 150
    assert model.decode_head.transformer_decoder.kmax_transformer_layers[0].drop_path_kmeans.drop_prob == 0.0


@pytest.mark.parametrize('name', sorted(TOY))
def test_toy_configs_train_and_evaluate(name, e2e):
    work_dir = e2e.train(KMAX / name)
    check_metrics(last_evaluation(work_dir), TOY[name])
