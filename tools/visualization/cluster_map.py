"""Draw whatever clustering an mmcluster model computes on an image (every model, one command).

    python tools/visualization/cluster_map.py CONFIG CHECKPOINT|none IMAGE [--out OUT.png] [--shape H W]
        [--alpha 0.5] [--seed 0] [--select NAME_SUBSTRING ...] [--heads E ...] [--mode auto|feat|predict]
        [--cols N] [--no-centers] [--gt GT.png [--gt-format label|coco-panoptic] [--ignore-value 0]]
        [--allow-missing] [--cfg-options k=v ...]

Examples::

    # Context Clusters: every token mixer, head 0 only (paper Fig. 4)
    python tools/visualization/cluster_map.py configs/context_cluster/fpn_coc-tiny-4_1xb8-toy_ade20k-256x256.py \\
        none demo.jpg --heads 0
    # ClusTR: the clustered scales of stage 2 (paper Fig. A3)
    python tools/visualization/cluster_map.py configs/clustr/clustr-t_1xb32-toy_imagenet.py CKPT demo.jpg \\
        --select stages.2
    # HCFormer: boundaries per level, with leakage / UE / ASA against a ground truth (paper Fig. 4, III)
    python tools/visualization/cluster_map.py configs/hcformer/hcformer_r18_1xb8-toy_ade20k-256x256.py CKPT \\
        img.jpg --gt ann.png --ignore-value 0

Everything is in :mod:`mmcluster.visualization.cluster_map` (arguments and output in its docstring).
"""
from mmcluster.visualization.cluster_map import main

if __name__ == '__main__':
    main()
