"""The toy-data baselines train and evaluate end to end with the real metrics.

Each config runs a few iterations through ``tools/train.py`` (validation at the end) and is then
evaluated from its checkpoint by ``tools/test.py``; the same through ``mim train`` / ``mim test``.
"""
import pytest

pytest.importorskip('mmdet.models')
pytest.importorskip('mmseg.models')
pytest.importorskip('mmpretrain.models')

BASELINES = {
    'mask2former_r18_1xb4-toy_coco-panoptic.py':
    ('mmdet', ['coco_panoptic/PQ', 'coco_panoptic/SQ', 'coco/bbox_mAP', 'coco/segm_mAP']),
    'mask2former_r18_1xb4-toy_coco.py': ('mmdet', ['coco/bbox_mAP', 'coco/segm_mAP']),
    'deformable-detr_r18_1xb4-toy_coco.py': ('mmdet', ['coco/bbox_mAP', 'coco/bbox_mAP_50']),
    'fpn_r18_1xb8-toy_ade20k-256x256.py': ('mmseg', ['mIoU', 'aAcc']),
    'resnet18_1xb32-toy_imagenet.py': ('mmpretrain', ['accuracy/top1']),
}


# the mim runs repeat the tools runs through mim's own entry points: long, so `make test-slow`
@pytest.mark.parametrize('runner', ['tools', pytest.param('mim', marks=pytest.mark.slow)])
@pytest.mark.parametrize('config', sorted(BASELINES))
def test_train_then_test(config, runner, e2e, repo_root):
    scope, keys = BASELINES[config]
    mim_scope = scope if runner == 'mim' else None
    e2e.train_then_test(repo_root / 'configs' / 'baselines' / config, keys, mim_scope=mim_scope)
