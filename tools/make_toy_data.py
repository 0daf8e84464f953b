"""Generate the toy datasets (COCO instances / panoptic, ADE20K layout, ImageNet folders) under OUT.

    python tools/make_toy_data.py OUT [--seed 0] [--num-train 240] [--num-val 60]
        [--num-cls-per-class 60] [--num-cls-val-per-class 15] [--tasks coco ade imagenet]

The generator is :mod:`mmcluster.datasets.toy_data` (formats and layout in its docstring).
"""
from mmcluster.datasets.toy_data import main

if __name__ == '__main__':
    main()
