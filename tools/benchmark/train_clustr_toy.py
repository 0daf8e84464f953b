"""Train each ClusTR toy config for a few minutes on the CPU and print its metrics beside the ResNet baselines'.

    python tools/benchmark/train_clustr_toy.py [--minutes 2] [--only CONFIG_NAME ...]
        [--baselines run|reuse|none] [--data data/toy] [--work-dir work_dirs/toy_clustr]

Runs and table: :func:`mmcluster.utils.toy_benchmark.benchmark` (iterations, seconds per iteration, wall time
with start-up and evaluation, and the evaluation record in ``<work-dir>/summary.json``).
"""
from mmcluster.utils.toy_benchmark import Entry, benchmark_cli
from mmcluster.utils.toy_run import REPO

CLUSTR, BASE = REPO / 'configs' / 'clustr', REPO / 'configs' / 'baselines'
ENTRIES = [
    Entry(CLUSTR / 'clustr-t_1xb32-toy_imagenet.py', ['accuracy/top1'], BASE / 'resnet18_1xb32-toy_imagenet.py'),
    Entry(CLUSTR / 'fpn_clustr-t_1xb8-toy_ade20k-256x256.py', ['mIoU', 'aAcc'],
          BASE / 'fpn_r18_1xb8-toy_ade20k-256x256.py'),
    Entry(CLUSTR / 'retinanet_clustr-t_fpn_1xb4-toy_coco.py', ['coco/bbox_mAP', 'coco/bbox_mAP_50']),
]

if __name__ == '__main__':
    benchmark_cli(__doc__.splitlines()[0], ENTRIES, 'toy_clustr')
