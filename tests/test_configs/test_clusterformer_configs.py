"""configs/clusterformer: every config parses and builds with its toolkit's registry (full-size ones without training or
weight loading), the ImageNet configs hold the released recipe, the downstream ones the paper's decoder (six
recurrent-clustering layers, T = 3, encoder-centre queries), the released backbone parameter count is reached with
`compat=True`, and the toy configs train, validate and test end to end (2 iterations, in the default suite)."""
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from e2e import build, family_configs, nparams, published
from mmengine.config import Config

CF, CONFIGS = family_configs('clusterformer')
PUBLISHED = published('clusterformer')
IN1K = {'clusterformer-tiny_8xb32_in1k.py': ('tiny', 32, 1.25e-4, 1e-4), 'clusterformer-small_8xb64_in1k.py':
        ('small', 64, 1e-4, 1e-2)}
DENSE = ['clusterformer_small_8xb2-lsj-50e_coco-panoptic.py', 'clusterformer_small_8xb2-lsj-50e_coco.py',
         'clusterformer_small_8xb2-160k_ade20k-512x512.py', 'clusterformer-detr_small_16xb2-50e_coco.py']
TOY = {
    'clusterformer-tiny_1xb32-toy_imagenet.py': ['accuracy/top1'],
    'clusterformer_toy_1xb4-toy_coco-panoptic.py': ['coco_panoptic/PQ', 'coco/segm_mAP'],
    'clusterformer_toy_1xb4-toy_coco.py': ['coco/segm_mAP', 'coco/bbox_mAP'],
    'clusterformer_toy_1xb8-toy_ade20k-256x256.py': ['mIoU', 'aAcc'],
    'clusterformer-detr_toy_1xb4-toy_coco.py': ['coco/bbox_mAP'],
}


def test_expected_configs_present():
    assert set(CONFIGS) == set(IN1K) | set(DENSE) | set(TOY)


@pytest.mark.parametrize('name', sorted(IN1K))
def test_imagenet_configs_hold_the_released_recipe(name):
    arch, batch, lr, floor = IN1K[name]
    cfg = Config.fromfile(str(CF / name))
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.weight_decay, opt.eps, opt.amsgrad) == ('AdamW', lr, 0.05, 1e-8, True)
    assert cfg.optim_wrapper.clip_grad.max_norm == 5.0 and 'paramwise_cfg' not in cfg.optim_wrapper
    warm, cos = cfg.param_scheduler
    assert (warm.start_factor, warm.end, cos.begin, cos.end) == (1e-3, 20, 20, 300)
    assert cos.eta_min == pytest.approx(lr * floor)
    assert cfg.train_cfg.max_epochs == 300 and cfg.train_dataloader.batch_size == batch
    ra = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandAugment'][0]
    assert (ra.num_policies, ra.magnitude_level, ra.magnitude_std) == (2, 9, 0.5)
    model = build(cfg)
    assert model.backbone.arch['num_iters'] == (3 if arch == 'tiny' else 1)  # as released
    assert model.head.fc.in_features == PUBLISHED['release_head_in_channels']
    assert type(model.neck).__name__ == 'ConcatGlobalAveragePooling'
    # the released layer has exactly the released parameters, neck and head included
    cfg.model.backbone.compat = True
    assert nparams(build(cfg)) == PUBLISHED['release_backbone_params'][arch] + 1440 * 1000 + 1000


@pytest.mark.parametrize('name', DENSE)
def test_dense_configs_build_with_the_paper_decoder(name):
    cfg = Config.fromfile(str(CF / name))
    assert 'mmcluster' in cfg.custom_imports['imports']
    model = build(cfg)
    assert type(model.backbone).__name__ == 'ClusterFormer' and model.backbone.arch['layers'] == [2, 2, 18, 2]
    if 'detr' in name:
        layers, clustering = model.decoder.layers, model.query_clustering
        assert type(model).__name__ == 'ClusterFormerDETR' and model.num_queries == 300
    else:
        head = model.panoptic_head if hasattr(model, 'panoptic_head') else model.decode_head
        layers, clustering = head.transformer_decoder.layers, head.query_clustering
        assert head.num_queries == 100 and clustering.num_centers == (10, 10)
    assert len(layers) == 6
    assert {layer.cross_attn.clustering.num_iters for layer in layers} == {3}
    assert {type(layer.cross_attn).__name__ for layer in layers} == {'RecurrentClusteringCrossAttention'}
    assert clustering.num_iters == 3 and clustering.center_ffn is not None


def test_metafile_lists_every_config():
    meta = yaml.safe_load((CF / 'metafile.yml').read_text())
    assert {Path(m['Config']).name for m in meta['Models']} == set(CONFIGS)
    assert 'configs/clusterformer/metafile.yml' in yaml.safe_load((REPO / 'model-index.yml').read_text())['Import']


@pytest.mark.parametrize('name', sorted(TOY))
def test_toy_config_trains_validates_and_tests(name, e2e):
    e2e.train_then_test(CF / name, TOY[name])
