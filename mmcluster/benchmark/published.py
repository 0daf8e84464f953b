"""Each paper's published numbers beside our measured parameters / FLOPs of the full-size configs.

The published numbers are read from ``tests/data/published.yml`` (the one copy the tests also read; each entry
cites its source). :data:`FULL_SIZE` says which config reproduces which published row, at which input size
its FLOPs are counted (the paper's: 224 x 224 for ImageNet, 512 x 512 for ADE20K, 800 x 1333 for COCO, kMaX's
1281 x 1281 crop) and where in the YAML file its numbers are. Our counts come from ``tools/get_flops.py`` in a
fresh process per config (:func:`measure_full_size`), once, because tracing a detector at 800 x 1333 on a CPU
takes a while.

Conventions differ between papers (stated in the table's notes): Context Clusters prints parameters in units of
2**20 (converted to millions here); FLOPs of the detection / segmentation papers are averages over the
validation images or at the crop size, ours at the one stated size; our FLOPs count one multiply-add as one.
"""
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import yaml

from mmcluster.utils.toy_run import REPO

PUBLISHED_YML = REPO / 'tests' / 'data' / 'published.yml'
#: the published columns, in table order
COLUMNS = ('params_M', 'GFLOPs', 'top1', 'box_AP', 'mask_AP', 'PQ', 'PQ_th', 'mIoU')


@dataclass(frozen=True)
class FullSize:
    """A full-size config and the published row it reproduces.

    Attributes:
        family: config folder (``context_cluster``, ``clustr``, ...).
        model: display name.
        task: ``classification`` / ``semantic`` / ``detection`` / ``instance`` / ``panoptic``.
        config: config path relative to the checkout.
        shape: input (H, W) of our FLOP count.
        numbers: published column (:data:`COLUMNS`) -> dotted key path in ``published.yml`` (under ``family``).
        source: where the numbers are printed (shown in the table).
    """
    family: str
    model: str
    task: str
    config: str
    shape: Tuple[int, int]
    numbers: Dict[str, str] = field(default_factory=dict)
    source: str = ''


def _coc(model, task, config, shape, numbers, source):
    return FullSize('context_cluster', model, task, f'configs/context_cluster/{config}', shape, numbers, source)


FULL_SIZE: List[FullSize] = [
    # Context Clusters (paper Tables 1, 4, 5)
    *(_coc(f'CoC-{a.capitalize()}', 'classification', f'coc-{a}_8xb128_in1k.py', (224, 224),
           dict(params_M=f'imagenet.{a}.params', GFLOPs=f'imagenet.{a}.gflops', top1=f'imagenet.{a}.top1'),
           'paper Table 1') for a in ('tiny', 'small', 'medium')),
    _coc('Mask R-CNN CoC-Small/4', 'instance', 'mask-rcnn_coc-small-4_fpn_8xb2-1x_coco.py', (800, 1333),
         dict(params_M='coco_mask_rcnn_1x.small.params', box_AP='coco_mask_rcnn_1x.small.box_ap.4',
              mask_AP='coco_mask_rcnn_1x.small.mask_ap.4'), 'paper Table 4'),
    _coc('Semantic FPN CoC-Small/4', 'semantic', 'fpn_coc-small-4_4xb4-80k_ade20k-512x512.py', (512, 512),
         dict(params_M='ade20k_semantic_fpn_80k.small.params', mIoU='ade20k_semantic_fpn_80k.small.miou.4'),
         'paper Table 5'),
    # ClusTR (paper Tables 1-4)
    *(FullSize('clustr', f'ClusTR-{a[0].upper()}', 'classification', f'configs/clustr/clustr-{a[0]}_8xb128_in1k.py',
               (224, 224), dict(params_M=f'imagenet.{a}.params', GFLOPs=f'imagenet.{a}.gflops',
                                top1=f'imagenet.{a}.top1'), 'paper Table 1') for a in ('tiny', 'small', 'base')),
    FullSize('clustr', 'Semantic FPN ClusTR-S', 'semantic', 'configs/clustr/fpn_clustr-s_4xb4-80k_ade20k-512x512.py',
             (512, 512), dict(params_M='downstream_small.ade20k_semantic_fpn_80k.params',
                              mIoU='downstream_small.ade20k_semantic_fpn_80k.miou'), 'paper Table 2'),
    FullSize('clustr', 'UperNet ClusTR-S', 'semantic', 'configs/clustr/upernet_clustr-s_4xb4-160k_ade20k-512x512.py',
             (512, 512), dict(params_M='downstream_small.ade20k_upernet_160k.params',
                              mIoU='downstream_small.ade20k_upernet_160k.miou'), 'paper Table 2'),
    FullSize('clustr', 'Mask R-CNN ClusTR-S', 'instance', 'configs/clustr/mask-rcnn_clustr-s_fpn_8xb2-1x_coco.py',
             (800, 1333), dict(params_M='downstream_small.coco_mask_rcnn_1x.params',
                               box_AP='downstream_small.coco_mask_rcnn_1x.box_ap',
                               mask_AP='downstream_small.coco_mask_rcnn_1x.mask_ap'), 'paper Table 3'),
    FullSize('clustr', 'RetinaNet ClusTR-S', 'detection', 'configs/clustr/retinanet_clustr-s_fpn_8xb2-1x_coco.py',
             (800, 1333), dict(params_M='downstream_small.coco_retinanet_1x.params',
                               box_AP='downstream_small.coco_retinanet_1x.ap'), 'paper Table 4'),
    # HCFormer (paper Tables 1-3)
    *(FullSize('hcformer', name, 'panoptic', f'configs/hcformer/{config}', (800, 1333),
               dict(params_M=f'coco_panoptic.{key}.params', GFLOPs=f'coco_panoptic.{key}.gflops',
                    PQ=f'coco_panoptic.{key}.pq', PQ_th=f'coco_panoptic.{key}.pq_th'), 'paper Table 1')
      for name, key, config in (
          ('HCFormer R50', 'hcformer_r50', 'hcformer_r50_8xb2-lsj-50e_coco-panoptic.py'),
          ('HCFormer+ R50', 'hcformerplus_r50', 'hcformerplus_r50_8xb2-lsj-100e_coco-panoptic.py'),
          ('HCFormer Swin-S', 'hcformer_swin-s', 'hcformer_swin-s-p4-w7-224_8xb2-lsj-50e_coco-panoptic.py'))),
    FullSize('hcformer', 'HCFormer R50 (instance)', 'instance', 'configs/hcformer/hcformer_r50_8xb2-lsj-50e_coco.py',
             (800, 1333), dict(params_M='coco_instance.hcformer_r50.params', GFLOPs='coco_instance.hcformer_r50.gflops',
                               mask_AP='coco_instance.hcformer_r50.ap'), 'paper Table 2'),
    *(FullSize('hcformer', name, 'semantic', f'configs/hcformer/{config}', (512, 512),
               dict(GFLOPs=f'ade20k_semantic.{key}.gflops', mIoU=f'ade20k_semantic.{key}.miou'), 'paper Table 3a')
      for name, key, config in (('HCFormer R50 (ADE20K)', 'hcformer_r50', 'hcformer_r50_8xb2-160k_ade20k-512x512.py'),
                                ('HCFormer Swin-S (ADE20K)', 'hcformer_swin-s',
                                 'hcformer_swin-s_8xb2-160k_ade20k-512x512.py'))),
    # ClusterFormer (paper Fig. 1, Table 6b; supplementary Figs. S1-S4; the Tiny top-1 is T = 3, the configs' T)
    FullSize('clusterformer', 'ClusterFormer-Tiny', 'classification',
             'configs/clusterformer/clusterformer-tiny_8xb32_in1k.py', (224, 224),
             dict(params_M='paper_tiny_params_m', top1='imagenet_tiny_top1_by_T.3'), 'paper Table 6b'),
    FullSize('clusterformer', 'ClusterFormer-Small', 'classification',
             'configs/clusterformer/clusterformer-small_8xb64_in1k.py', (224, 224),
             dict(top1='imagenet_top1.small'), 'paper Fig. 1'),
    FullSize('clusterformer', 'ClusterFormer-Small DETR', 'detection',
             'configs/clusterformer/clusterformer-detr_small_16xb2-50e_coco.py', (800, 1333),
             dict(box_AP='coco.box_ap'), 'paper Fig. 1, supp. Fig. S1'),
    FullSize('clusterformer', 'ClusterFormer-Small (instance)', 'instance',
             'configs/clusterformer/clusterformer_small_8xb2-lsj-50e_coco.py', (800, 1333),
             dict(mask_AP='coco.mask_ap'), 'paper Fig. 1, supp. Fig. S3'),
    FullSize('clusterformer', 'ClusterFormer-Small (panoptic)', 'panoptic',
             'configs/clusterformer/clusterformer_small_8xb2-lsj-50e_coco-panoptic.py', (800, 1333),
             dict(PQ='coco.pq'), 'paper Fig. 1, supp. Fig. S4'),
    FullSize('clusterformer', 'ClusterFormer-Small (ADE20K)', 'semantic',
             'configs/clusterformer/clusterformer_small_8xb2-160k_ade20k-512x512.py', (512, 512),
             dict(mIoU='ade20k_miou'), 'paper Fig. 1, supp. Fig. S2'),
    # kMaX-DeepLab (official PyTorch model zoo); ADE20K is not in published.yml
    FullSize('kmax_deeplab', 'kMaX-DeepLab R50', 'panoptic',
             'configs/kmax_deeplab/kmax-deeplab_r50_32xb2-150k_coco-panoptic.py', (1281, 1281),
             dict(PQ='coco_panoptic_pq.pytorch.r50'), 'bytedance/kmax-deeplab model zoo'),
    FullSize('kmax_deeplab', 'kMaX-DeepLab ConvNeXt-T', 'panoptic',
             'configs/kmax_deeplab/kmax-deeplab_convnext-t_32xb2-150k_coco-panoptic.py', (1281, 1281),
             dict(PQ='coco_panoptic_pq.pytorch.convnext_tiny'), 'bytedance/kmax-deeplab model zoo'),
    FullSize('kmax_deeplab', 'kMaX-DeepLab R50 (ADE20K)', 'semantic',
             'configs/kmax_deeplab/kmax-deeplab_r50_32xb2-100k_ade20k-641x641.py', (641, 641), {}, '-'),
]


@lru_cache(maxsize=1)
def load_published(path: Path = PUBLISHED_YML) -> Dict[str, Any]:
    """The whole ``published.yml``."""
    if not Path(path).is_file():
        raise FileNotFoundError(f'{path} is missing: the published numbers live in tests/data/published.yml')
    return yaml.safe_load(Path(path).read_text())


def lookup(family: str, dotted: str, data: Optional[Dict[str, Any]] = None) -> Any:
    """``published.yml[family][k1][k2]...`` for ``dotted = 'k1.k2...'`` (integer keys such as ``4`` allowed)."""
    node = (data or load_published())[family]
    for key in dotted.split('.'):
        if isinstance(node, dict) and key not in node and key.isdigit():
            key = int(key)
        if not isinstance(node, dict) or key not in node:
            raise KeyError(f'published.yml has no {family}.{dotted} (missing {key!r})')
        node = node[key]
    return node


def published_row(entry: FullSize, data: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The published numbers of ``entry`` by column; Context Clusters' 2**20 parameter unit converted to 1e6."""
    data = data or load_published()
    row = {col: lookup(entry.family, path, data) for col, path in entry.numbers.items()}
    if 'params_M' in row and entry.family == 'context_cluster':
        row['params_M'] = row['params_M'] * data['context_cluster']['params_unit'] / 1e6
    return row


def measure_full_size(entries: List[FullSize], counter: Optional[Callable[..., Dict[str, Any]]] = None,
                      cache: Optional[Path] = None, log: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """Published numbers beside our params / FLOPs (``counter(config, shape)``, default a fresh process each).

    Args:
        entries: the full-size configs (:data:`FULL_SIZE`).
        counter: ``counter(config path, (H, W))`` -> ``{'params', 'flops', 'uncounted', 'seconds'}`` or
            ``{'error'}``; default :func:`~mmcluster.benchmark.flops.count_in_subprocess`.
        cache: a JSON file of earlier rows (same config and input size: not counted again; failed rows are
            retried); every new row is added to it at once, so an interrupted pass resumes where it stopped.
        log: progress printer.
    """
    if counter is None:
        from .flops import count_in_subprocess as counter
    cached: Dict[Tuple[str, Tuple[int, ...]], Dict[str, Any]] = {}
    if cache is not None and Path(cache).is_file():
        cached = {(r['config'], tuple(r['shape'])): r for r in json.loads(Path(cache).read_text())
                  if 'error' not in r}
    rows = []
    for entry in entries:
        row = dict(family=entry.family, model=entry.model, task=entry.task, config=entry.config,
                   shape=list(entry.shape), source=entry.source, published=published_row(entry))
        earlier = cached.get((entry.config, tuple(entry.shape)))
        if earlier is not None:
            row.update({k: earlier.get(k) for k in ('params', 'flops', 'uncounted', 'seconds')})
            rows.append(row)
            continue
        log(f'  full-size {entry.model}: {entry.config} at {entry.shape[0]}x{entry.shape[1]} ...')
        ours = counter(REPO / entry.config, entry.shape)
        if 'error' in ours:
            row['error'] = ours['error']
            log(f'    failed: {ours["error"]}')
        else:
            row.update(params=ours['params'], flops=ours['flops'], uncounted=ours['uncounted'],
                       seconds=ours.get('seconds'))
            log(f'    {ours["params"] / 1e6:.2f} M params, {ours["flops"] / 1e9:.1f} GFLOPs '
                f'({ours.get("seconds", 0):.0f} s)')
        rows.append(row)
        if cache is not None:
            cached[(entry.config, tuple(entry.shape))] = row
            Path(cache).write_text(json.dumps(list(cached.values()), indent=1))
    return rows
