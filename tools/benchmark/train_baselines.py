"""Train each toy-data baseline for a few minutes on the CPU and print the metrics it reaches.

Not a test: this tells what a baseline reaches on the toy data within a CPU budget, the yardstick for the
clustering models' toy configs (the family scripts ``train_*_toy.py`` compare with these runs, or read them
with ``--baselines reuse``).

    python tools/benchmark/train_baselines.py [--minutes 3] [--only CONFIG_NAME ...] [--data data/toy]

Runs: :func:`mmcluster.utils.toy_benchmark.benchmark` (``tools/train.py --time-budget``, then one
evaluation on the toy val split); results in ``work_dirs/toy_baselines`` (``summary.json``).
"""
from mmcluster.utils.toy_benchmark import Entry, benchmark_cli
from mmcluster.utils.toy_run import REPO

BASE = REPO / 'configs' / 'baselines'
ENTRIES = [
    Entry(BASE / 'mask2former_r18_1xb4-toy_coco-panoptic.py', ['coco_panoptic/PQ', 'coco/bbox_mAP', 'coco/segm_mAP']),
    Entry(BASE / 'mask2former_r18_1xb4-toy_coco.py', ['coco/bbox_mAP', 'coco/segm_mAP']),
    Entry(BASE / 'deformable-detr_r18_1xb4-toy_coco.py', ['coco/bbox_mAP', 'coco/bbox_mAP_50']),
    Entry(BASE / 'fpn_r18_1xb8-toy_ade20k-256x256.py', ['mIoU', 'aAcc']),
    Entry(BASE / 'resnet18_1xb32-toy_imagenet.py', ['accuracy/top1']),
]

if __name__ == '__main__':
    benchmark_cli(__doc__.splitlines()[0], ENTRIES, 'toy_baselines', default_minutes=3.0, baselines=False)
