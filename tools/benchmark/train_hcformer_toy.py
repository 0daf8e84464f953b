"""Train the HCFormer toy configs for a few minutes each on the CPU and print PQ / AP / mIoU beside the
baselines' (same task, data and budget).

* ``hcformer_r18_1xb4-toy_coco-panoptic.py`` vs ``mask2former_r18_1xb4-toy_coco-panoptic.py``: the same model
  and schedule except HCFormer's clustering in place of the pixel decoder;
* ``hcformer_r18_1xb4-toy_coco.py`` vs ``mask2former_r18_1xb4-toy_coco.py``;
* ``hcformer_r18_1xb8-toy_ade20k-256x256.py`` vs ``fpn_r18_1xb8-toy_ade20k-256x256.py`` (there is no Mask2Former
  ADE20K toy baseline; Semantic FPN R-18 is the semantic baseline).

    python tools/benchmark/train_hcformer_toy.py [--minutes 3] [--only CONFIG_NAME ...]
        [--baselines run|reuse|none] [--data data/toy] [--work-dir work_dirs/toy_hcformer]

Runs and table: :func:`mmcluster.utils.toy_benchmark.benchmark`; results in ``<work-dir>/summary.json``.
"""
from mmcluster.utils.toy_benchmark import Entry, benchmark_cli
from mmcluster.utils.toy_run import REPO

HC, BASE = REPO / 'configs' / 'hcformer', REPO / 'configs' / 'baselines'
ENTRIES = [
    Entry(HC / 'hcformer_r18_1xb4-toy_coco-panoptic.py', ['coco_panoptic/PQ', 'coco/segm_mAP', 'coco/bbox_mAP'],
          BASE / 'mask2former_r18_1xb4-toy_coco-panoptic.py'),
    Entry(HC / 'hcformer_r18_1xb4-toy_coco.py', ['coco/segm_mAP', 'coco/bbox_mAP'], BASE / 'mask2former_r18_1xb4-toy_coco.py'),
    Entry(HC / 'hcformer_r18_1xb8-toy_ade20k-256x256.py', ['mIoU', 'aAcc'], BASE / 'fpn_r18_1xb8-toy_ade20k-256x256.py'),
]

if __name__ == '__main__':
    benchmark_cli(__doc__.splitlines()[0], ENTRIES, 'toy_hcformer', default_minutes=3.0)
