"""Train the Context Clusters toy configs for a few minutes each on the CPU and print their metrics beside the
ResNet-18 baselines' (same task, data and budget).

    python tools/benchmark/train_context_cluster_toy.py [--minutes 2] [--only CONFIG_NAME ...]
        [--baselines run|reuse|none] [--data data/toy] [--work-dir work_dirs/toy_context_cluster]

There is no Mask R-CNN baseline: Mask2Former R-18 is the instance-segmentation baseline. Runs and table:
:func:`mmcluster.utils.toy_benchmark.benchmark`; results in ``<work-dir>/summary.json``.
"""
from mmcluster.utils.toy_benchmark import Entry, benchmark_cli
from mmcluster.utils.toy_run import REPO

COC, BASE = REPO / 'configs' / 'context_cluster', REPO / 'configs' / 'baselines'
ENTRIES = [
    Entry(COC / 'coc-tiny_1xb32-toy_imagenet.py', ['accuracy/top1'], BASE / 'resnet18_1xb32-toy_imagenet.py'),
    Entry(COC / 'mask-rcnn_coc-tiny-25_fpn_1xb2-toy_coco.py', ['coco/bbox_mAP', 'coco/segm_mAP'],
          BASE / 'mask2former_r18_1xb4-toy_coco.py'),
    Entry(COC / 'fpn_coc-tiny-4_1xb8-toy_ade20k-256x256.py', ['mIoU', 'aAcc'], BASE / 'fpn_r18_1xb8-toy_ade20k-256x256.py'),
]

if __name__ == '__main__':
    benchmark_cli(__doc__.splitlines()[0], ENTRIES, 'toy_context_cluster')
