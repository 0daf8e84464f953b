"""Data for mmcluster's toy setting.

:mod:`.toy_data` generates small deterministic datasets in the real COCO (instances, panoptic), ADE20K and
ImageNet-folder formats, which the toolkits' own dataset classes read unchanged; it is imported on demand
(``from mmcluster.datasets.toy_data import make_toy_data``; command ``tools/make_toy_data.py``), not by
``import mmcluster``. mmcluster registers no dataset or transform of its own (the ``DATASETS`` / ``TRANSFORMS``
registries point here for when one is needed).
"""
