"""The toy training protocol: every model of a task trained the same way, for the same budget, with a learning curve.

docs/benchmark_protocol.md explains every setting and records what the models reached. In short:

* **data**: :func:`prepare_data` generates the ``mini`` preset of :mod:`mmcluster.datasets.toy_data` (images of
  112-176 px, 1-3 large things, no tiny ones; 1000 train / 100 val scenes, 200 / 50 classification images per
  class) into its own root, so the default toy data of the tests is untouched. Nothing trains on the val split.
* **input size**, per task: 64 px crops for classification and 64 px (short side) for detection, 128 px for
  semantic, instance and panoptic segmentation (more iterations per CPU-minute: the pilots of
  docs/benchmark_protocol.md): every train / test resize and crop of the config's pipelines and the data
  preprocessor's fixed pad size are set by :func:`apply_protocol` (transform by transform, the same rule for
  every model of the task).
* **model option**: detection sets mmdet's iterative box refinement (``with_box_refine``) of every
  Deformable-DETR-style detector (:attr:`TaskSchedule.box_refine`).
* **schedule**, per task and the same for every model of it: batch size, AdamW (learning rate, weight decay,
  gradient clipping), no reduced learning rate for the backbone (nothing is pretrained here, so the toolkits'
  ``backbone lr_mult=0.1`` for pretrained backbones would only slow the from-scratch backbone down; other
  ``custom_keys`` of a config stay), and a learning rate that is a function of TRAINING TIME (linear warm-up over
  the first 5 % of the budget, cosine to 1 % at its end: :class:`mmcluster.utils.toy_run.TrainClockHook`), so a
  slow and a fast model follow the same schedule shape within the same budget.
* **budget and clock**: ``budget_minutes(mode)`` of CPU time of the one-thread training process (``clock='process'``:
  on a shared machine the budget is what a dedicated core would give, whatever the load), validations excluded;
  validation every ``val_every_minutes(mode)`` of it, which gives the learning curve.
* **test-time thresholds** of panoptic inference, the same for every panoptic model (mmdet's Mask2Former defaults
  of 0.8, and 0.4, drop every thing segment of a model trained for minutes): :data:`PANOPTIC_TEST_CFG`.

Usage::

    from mmcluster.benchmark.protocol import prepare_data, protocol_runs, run_protocol
    data = prepare_data('full')
    for run in protocol_runs('full'):
        result = run_protocol(run, 'work_dirs/protocol/' + run.key, 'full', data=data)
        result.val_curve        # [{'iter', 'train_s', 'val_s', 'wall_s', <metrics>}, ...]
"""
import copy
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from mmcluster.utils.toy_run import REPO, TOY_DATA_ENV, ToyRun, run_config

PathLike = Union[str, Path]
MODES = ('full', 'short')
TASKS = ('classification', 'semantic', 'detection', 'instance', 'panoptic')
FAMILIES = ('baselines', 'context_cluster', 'clustr', 'hcformer', 'clusterformer', 'kmax_deeplab')

#: evaluator keys per task, primary first
TASK_METRICS: Dict[str, Tuple[str, ...]] = {
    'classification': ('accuracy/top1', ),
    'semantic': ('mIoU', 'aAcc'),
    'detection': ('coco/bbox_mAP', 'coco/bbox_mAP_50'),
    'instance': ('coco/segm_mAP', 'coco/bbox_mAP'),
    'panoptic': ('coco_panoptic/PQ', 'coco_panoptic/PQ_th', 'coco_panoptic/PQ_st'),
}
#: the issue's targets for the baselines (issue 12): what "learning shows" means
TARGETS: Dict[str, Dict[str, float]] = {
    'classification': {'accuracy/top1': 60.0},
    'semantic': {'mIoU': 40.0},
    'detection': {'coco/bbox_mAP': 15.0},
    'instance': {'coco/segm_mAP': 15.0},
    'panoptic': {'coco_panoptic/PQ': 15.0, 'coco_panoptic/PQ_th': 10.0},
}

#: data of each mode: ``make_toy_data`` arguments
DATA: Dict[str, Dict[str, Any]] = {
    'full': dict(preset='mini', num_train=1000, num_val=100, num_cls_per_class=200, num_cls_val_per_class=50),
    'short': dict(preset='mini', num_train=8, num_val=4, num_cls_per_class=4, num_cls_val_per_class=2),
}
_BUDGET = {'full': 15.0, 'short': 0.02}  # minutes of training (CPU) time per model (issue 12: at most 15)
_VAL_EVERY = {'full': 3.0, 'short': None}
_SHORT_ITERS = 2  # the short mode also stops after this many iterations (seconds per model)


@dataclass(frozen=True)
class TaskSchedule:
    """The protocol's settings for every model of one task.

    Attributes:
        input_size: (H, W) of the training crops (dense tasks: also the test scale's short side).
        batch_size: images per training batch.
        lr: AdamW learning rate (per-key multipliers of the config other than the backbone's kept).
        weight_decay: AdamW weight decay.
        clip_grad: max gradient norm (None: no clipping).
        time_lr: ``(warm-up fraction, final factor)`` of the learning rate against training time.
        box_refine: set mmdet's ``with_box_refine`` (iterative box refinement, Deformable DETR Sec. 4.1) of
            every model of the task whose config has that option (the Deformable-DETR-style detectors).
    """
    input_size: Tuple[int, int]
    batch_size: int
    lr: float
    weight_decay: float = 0.05
    clip_grad: Optional[float] = None
    time_lr: Tuple[float, float] = (0.05, 0.01)
    box_refine: bool = False


SCHEDULES: Dict[str, TaskSchedule] = {
    'classification': TaskSchedule(input_size=(64, 64), batch_size=32, lr=3e-4),
    'semantic': TaskSchedule(input_size=(128, 128), batch_size=8, lr=1e-3),
    'detection': TaskSchedule(input_size=(64, 64), batch_size=4, lr=4e-4, weight_decay=1e-4, clip_grad=1.0,
                              box_refine=True),
    'instance': TaskSchedule(input_size=(128, 128), batch_size=4, lr=4e-4, clip_grad=1.0),
    'panoptic': TaskSchedule(input_size=(128, 128), batch_size=4, lr=4e-4, clip_grad=1.0),
}
_SHORT_SIZE = {'classification': (32, 32)}  # other tasks: 64^2 in the short mode

#: Panoptic inference thresholds for every panoptic model. mmdet's Mask2Former keeps a query when its class
#: score exceeds ``object_mask_thr`` (0.8) and its visible part keeps ``iou_thr`` (0.8) of its mask; kMaX-DeepLab
#: uses ``class_threshold_thing`` / ``_stuff`` (0.7 / 0.5) and ``overlap_threshold`` (0.8) for the same two
#: decisions. After minutes of training a thing query's probability is spread over the five thing classes (at
#: most 0.26 for Mask2Former after 4 CPU-minutes: docs/benchmark_protocol.md), so at 0.8 or 0.4 PQ_th is 0
#: whatever its masks; the protocol uses one lower class threshold (twice the chance level of the 9 classes and
#: no-object) and one overlap threshold for all.
PANOPTIC_CLASS_THR = 0.2
PANOPTIC_OVERLAP_THR = 0.5
PANOPTIC_TEST_CFG = {
    'object_mask_thr': PANOPTIC_CLASS_THR, 'iou_thr': PANOPTIC_OVERLAP_THR,  # mmdet Mask2Former fusion
    'class_threshold_thing': PANOPTIC_CLASS_THR, 'class_threshold_stuff': PANOPTIC_CLASS_THR,  # kMaX
    'overlap_threshold': PANOPTIC_OVERLAP_THR,
}


@dataclass(frozen=True)
class ProtocolRun:
    """One model trained under the protocol.

    Attributes:
        task: one of :data:`TASKS`.
        model: display name.
        family: one of :data:`FAMILIES`.
        config: the model's toy config (the protocol's settings are applied on top, :func:`apply_protocol`).
        is_baseline: the task's baseline (the others are compared with it).
        metrics: evaluator keys, primary first.
        cfg_options: extra ``--cfg-options`` of this run (the protocol's own settings are in the derived config).
        input_size: (H, W) of the training crops.
    """
    task: str
    model: str
    family: str
    config: Path
    is_baseline: bool
    metrics: Tuple[str, ...]
    cfg_options: Dict[str, Any] = field(default_factory=dict)
    input_size: Tuple[int, int] = (128, 128)

    @property
    def key(self) -> str:
        """A file-name-safe id, ``<task>__<config stem>``."""
        return f'{self.task}__{self.config.stem}'


# (task, display name, family, config relative to configs/, is_baseline)
_MODELS: Tuple[Tuple[str, str, str, str, bool], ...] = (
    ('classification', 'ResNet-18', 'baselines', 'baselines/resnet18_1xb32-toy_imagenet.py', True),
    ('classification', 'CoC-tiny', 'context_cluster', 'context_cluster/coc-tiny_1xb32-toy_imagenet.py', False),
    ('classification', 'ClusTR-T', 'clustr', 'clustr/clustr-t_1xb32-toy_imagenet.py', False),
    ('classification', 'ClusterFormer-tiny', 'clusterformer', 'clusterformer/clusterformer-tiny_1xb32-toy_imagenet.py',
     False),
    ('semantic', 'Semantic FPN R-18', 'baselines', 'baselines/fpn_r18_1xb8-toy_ade20k-256x256.py', True),
    ('semantic', 'Semantic FPN CoC-tiny', 'context_cluster', 'context_cluster/fpn_coc-tiny-4_1xb8-toy_ade20k-256x256.py',
     False),
    ('semantic', 'Semantic FPN ClusTR-T', 'clustr', 'clustr/fpn_clustr-t_1xb8-toy_ade20k-256x256.py', False),
    ('semantic', 'UperNet ClusTR-T', 'clustr', 'clustr/upernet_clustr-t_1xb8-toy_ade20k-256x256.py', False),
    ('semantic', 'HCFormer R-18', 'hcformer', 'hcformer/hcformer_r18_1xb8-toy_ade20k-256x256.py', False),
    ('semantic', 'ClusterFormer (toy)', 'clusterformer', 'clusterformer/clusterformer_toy_1xb8-toy_ade20k-256x256.py',
     False),
    ('semantic', 'kMaX-DeepLab R-18', 'kmax_deeplab', 'kmax_deeplab/kmax-deeplab_r18_1xb4-toy_ade20k-256x256.py', False),
    ('detection', 'Deformable-DETR R-18', 'baselines', 'baselines/deformable-detr_r18_1xb4-toy_coco.py', True),
    ('detection', 'RetinaNet ClusTR-T', 'clustr', 'clustr/retinanet_clustr-t_fpn_1xb4-toy_coco.py', False),
    ('detection', 'ClusterFormer Deformable-DETR (toy)', 'clusterformer',
     'clusterformer/clusterformer-detr_toy_1xb4-toy_coco.py', False),
    ('instance', 'Mask2Former R-18', 'baselines', 'baselines/mask2former_r18_1xb4-toy_coco.py', True),
    ('instance', 'Mask R-CNN CoC-tiny', 'context_cluster', 'context_cluster/mask-rcnn_coc-tiny-25_fpn_1xb2-toy_coco.py',
     False),
    ('instance', 'Mask R-CNN ClusTR-T', 'clustr', 'clustr/mask-rcnn_clustr-t_fpn_1xb2-toy_coco.py', False),
    ('instance', 'HCFormer R-18', 'hcformer', 'hcformer/hcformer_r18_1xb4-toy_coco.py', False),
    ('instance', 'ClusterFormer (toy)', 'clusterformer', 'clusterformer/clusterformer_toy_1xb4-toy_coco.py', False),
    ('panoptic', 'Mask2Former R-18', 'baselines', 'baselines/mask2former_r18_1xb4-toy_coco-panoptic.py', True),
    ('panoptic', 'HCFormer R-18', 'hcformer', 'hcformer/hcformer_r18_1xb4-toy_coco-panoptic.py', False),
    ('panoptic', 'ClusterFormer (toy)', 'clusterformer', 'clusterformer/clusterformer_toy_1xb4-toy_coco-panoptic.py',
     False),
    ('panoptic', 'kMaX-DeepLab R-18', 'kmax_deeplab', 'kmax_deeplab/kmax-deeplab_r18_1xb2-toy_coco-panoptic.py', False),
    ('panoptic', 'CMT-DeepLab R-18', 'kmax_deeplab', 'kmax_deeplab/cmt-deeplab_r18_1xb2-toy_coco-panoptic.py', False),
)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')


def input_size(task: str, mode: str = 'full') -> Tuple[int, int]:
    """(H, W) of the training crops of ``task`` in ``mode``."""
    _check_mode(mode)
    if task not in SCHEDULES:
        raise ValueError(f'task must be one of {TASKS}, got {task!r}')
    if mode == 'short':
        return _SHORT_SIZE.get(task, (64, 64))
    return SCHEDULES[task].input_size


def protocol_runs(mode: str = 'full') -> List[ProtocolRun]:
    """Every model under the protocol (baselines first within each task), in ``mode`` (``full`` | ``short``)."""
    _check_mode(mode)
    runs = []
    for task, name, family, config, is_baseline in _MODELS:
        runs.append(ProtocolRun(task=task, model=name, family=family, config=REPO / 'configs' / config,
                                is_baseline=is_baseline, metrics=TASK_METRICS[task],
                                input_size=input_size(task, mode)))
    return runs


def budget_minutes(mode: str) -> float:
    """Training budget per model in minutes of CPU time of the one-thread training process (validations
    excluded)."""
    _check_mode(mode)
    return _BUDGET[mode]


def val_every_minutes(mode: str) -> Optional[float]:
    """Validation period in minutes of training time (None: only at the end)."""
    _check_mode(mode)
    return _VAL_EVERY[mode]


def default_data_root(mode: str) -> Path:
    """``<checkout>/work_dirs/protocol_data/<mode>`` (git-ignored; the default toy data stays as it is)."""
    _check_mode(mode)
    return REPO / 'work_dirs' / 'protocol_data' / mode


def prepare_data(mode: str, root: Optional[PathLike] = None) -> Path:
    """Generate the protocol's data of ``mode`` into ``root`` unless it is there already; return the root."""
    _check_mode(mode)
    root = Path(root) if root is not None else default_data_root(mode)
    from mmcluster.datasets.toy_data import read_stamp
    settings = dict(DATA[mode])
    stamp = read_stamp(root)
    if stamp is not None and all(stamp.get(k) == v for k, v in settings.items()):
        return root.resolve()
    from mmcluster.datasets.toy_data import make_toy_data
    make_toy_data(root, **settings)
    return root.resolve()


# --------------------------------------------------------------------------- the protocol's config
def _pipeline(pipeline: list, task: str, size: Tuple[int, int], train: bool) -> list:
    """The pipeline with every resize / crop set to the protocol's size (the other transforms as they are).

    Dense tasks: training resizes aim at short side S (long side at most 2S; a random resize keeps the config's
    ratio range, a multi-scale choice becomes short side 7/8, 1 or 9/8 of S) and crops are S x S; test resizes
    give short side S. Classification: crops of S (test: resize to 110/96 S, centre crop S).
    """
    side = size[0]
    out = []
    for t in pipeline:
        t = copy.deepcopy(t)
        kind = t.get('type', '')
        if task == 'classification':
            if kind in ('RandomResizedCrop', 'RandomCrop', 'CenterCrop'):
                t['scale' if 'scale' in t else 'crop_size'] = side
            elif kind == 'ResizeEdge':
                t['scale'] = int(round(side * 110 / 96))  # the toy configs' 110 / 96 resize-then-crop ratio
        elif kind == 'RandomResize':
            t['scale'] = (2 * side, side)
        elif kind == 'RandomChoiceResize':  # multi-scale training: short side 7/8, 1 or 9/8 of S
            t['scales'] = [(2 * side, side * k // 8) for k in (7, 8, 9)]
        elif kind == 'Resize':
            t['scale'] = (2 * side, side)
        elif kind in ('RandomCrop', ) and 'crop_size' in t:
            t['crop_size'] = (side, side)
        out.append(t)
    return out


def _set_pipelines(cfg, task: str, size: Tuple[int, int]) -> None:
    for loader, train in (('train_dataloader', True), ('val_dataloader', False), ('test_dataloader', False)):
        if cfg.get(loader) is None:
            continue
        dataset = cfg[loader]['dataset']
        while 'pipeline' not in dataset and 'dataset' in dataset:  # wrappers (RepeatDataset, ...)
            dataset = dataset['dataset']
        dataset['pipeline'] = _pipeline(dataset['pipeline'], task, size, train)
    for key in ('train_pipeline', 'test_pipeline'):  # top-level copies, for readers of the dumped config
        if key in cfg:
            cfg[key] = _pipeline(cfg[key], task, size, key.startswith('train'))


def _set_model_sizes(cfg, size: Tuple[int, int]) -> None:
    pre = cfg.model.get('data_preprocessor')
    if pre is not None:
        if pre.get('size') is not None:
            pre['size'] = tuple(size)
        for aug in pre.get('batch_augments') or []:
            if 'size' in aug:
                aug['size'] = tuple(size)
    test_cfg = cfg.model.get('test_cfg')
    if test_cfg is not None and test_cfg.get('mode') == 'slide':
        test_cfg['crop_size'] = tuple(size)
        test_cfg['stride'] = tuple(s * 2 // 3 for s in size)


def _set_schedule(cfg, schedule: TaskSchedule, batch_size: int) -> None:
    cfg.train_dataloader['batch_size'] = batch_size
    wrapper = cfg.optim_wrapper
    wrapper['type'] = 'OptimWrapper'
    wrapper.pop('loss_scale', None)
    wrapper['optimizer'] = dict(type='AdamW', lr=schedule.lr, weight_decay=schedule.weight_decay, eps=1e-8,
                                betas=(0.9, 0.999))
    wrapper['clip_grad'] = None if schedule.clip_grad is None else dict(max_norm=schedule.clip_grad, norm_type=2)
    paramwise = wrapper.get('paramwise_cfg')
    if paramwise is not None:
        for key, value in (paramwise.get('custom_keys') or {}).items():
            if key == 'backbone' and 'lr_mult' in value:
                value['lr_mult'] = 1.0  # from scratch: the backbone learns at the full rate
    cfg.param_scheduler = []  # TrainClockHook sets the learning rate from the training time


def _set_test_thresholds(cfg, task: str) -> None:
    if task != 'panoptic':
        return
    test_cfg = cfg.model.get('test_cfg')
    if test_cfg is None:
        return
    for key, value in PANOPTIC_TEST_CFG.items():
        if key in test_cfg:
            test_cfg[key] = value
    if 'object_mask_thr' not in test_cfg and 'class_threshold_thing' not in test_cfg:
        test_cfg.update(object_mask_thr=PANOPTIC_CLASS_THR, iou_thr=PANOPTIC_OVERLAP_THR)


def _set_box_refinement(cfg, schedule: TaskSchedule) -> None:
    if schedule.box_refine and 'with_box_refine' in cfg.model:
        cfg.model['with_box_refine'] = True


def apply_protocol(cfg, task: str, mode: str = 'full'):
    """Return a copy of the loaded config ``cfg`` with the protocol's settings of ``task`` (module docstring)."""
    _check_mode(mode)
    cfg = copy.deepcopy(cfg)
    schedule = SCHEDULES[task]
    size = input_size(task, mode)
    _set_pipelines(cfg, task, size)
    if task != 'classification':
        _set_model_sizes(cfg, size)
    _set_schedule(cfg, schedule, schedule.batch_size if mode == 'full' else 2)
    _set_test_thresholds(cfg, task)
    _set_box_refinement(cfg, schedule)
    return cfg


def protocol_config(run: ProtocolRun, mode: str, data: PathLike, out: PathLike) -> Path:
    """Write ``run``'s config with the protocol applied (data paths resolved to ``data``) to ``out``."""
    from mmengine.config import Config
    previous = os.environ.get(TOY_DATA_ENV)
    os.environ[TOY_DATA_ENV] = str(Path(data).resolve())
    try:
        cfg = Config.fromfile(str(run.config))
    finally:
        if previous is None:
            os.environ.pop(TOY_DATA_ENV, None)
        else:
            os.environ[TOY_DATA_ENV] = previous
    cfg = apply_protocol(cfg, run.task, mode)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg.dump(str(out))
    return out


def run_protocol(run: ProtocolRun, work_dir: PathLike, mode: str = 'full', data: Optional[PathLike] = None,
                 **run_kwargs) -> ToyRun:
    """Train ``run`` under the protocol of ``mode``; return what it reached (``val_curve``: the learning curve).

    Args:
        run: from :func:`protocol_runs`.
        work_dir: the run's work dir (emptied first); the derived config is ``<work_dir>/protocol_config.py``.
        mode: ``full`` or ``short``.
        data: the protocol's data root (default: :func:`prepare_data` of ``mode``, generated if needed).
        **run_kwargs: more :func:`~mmcluster.utils.toy_run.run_config` arguments (e.g. ``timeout``).
    """
    _check_mode(mode)
    data = prepare_data(mode) if data is None else Path(data)
    work_dir = Path(work_dir).resolve()
    shutil.rmtree(work_dir, ignore_errors=True)
    config = protocol_config(run, mode, data, work_dir / 'protocol_config.py')
    kwargs = dict(train_minutes=budget_minutes(mode), val_every_minutes=val_every_minutes(mode),
                  time_lr=SCHEDULES[run.task].time_lr, clock='process', threads=1, data=data,
                  cfg_options=dict(run.cfg_options), fresh=False)
    if mode == 'short':
        kwargs['iters'] = _SHORT_ITERS
    kwargs.update(run_kwargs)
    return run_config(config, work_dir, **kwargs)


def percent(key: str, value: Optional[float]) -> Optional[float]:
    """``value`` of metric ``key`` in percent: mmdet's COCO box / mask mAPs (``coco/...``) are fractions, the
    other metrics (top-1, mIoU, PQ) are already percentages."""
    if value is None or not key.startswith('coco/') or value < 0:  # -1: no object of that size range
        return value
    return round(100.0 * value, 2)


def result_record(run: ProtocolRun, result: ToyRun, mode: str) -> Dict[str, Any]:
    """The JSON record of one protocol run: what was trained, the final metrics and the learning curve, every
    metric in percent (:func:`percent`); ``iters``: the iterations trained at the last validation; ``wall_s``:
    the subprocess's wall time, or without it (a record rebuilt from a work dir) the wall time from the first
    iteration to the end of the last validation."""
    curve = [{k: percent(k, r[k]) if k in run.metrics else r[k]
              for k in ('iter', 'train_s', 'val_s', 'wall_s', *run.metrics) if k in r} for r in result.val_curve]
    final = result.val_curve[-1] if result.val_curve else result.metrics
    wall = result.wall_s or (result.val_curve[-1].get('wall_s', 0.0) if result.val_curve else 0.0)
    return dict(
        key=run.key, task=run.task, model=run.model, family=run.family, is_baseline=run.is_baseline,
        config=str(run.config.relative_to(REPO)), mode=mode, budget_cpu_minutes=budget_minutes(mode),
        val_every_cpu_minutes=val_every_minutes(mode), input_size=list(run.input_size),
        schedule=dict(SCHEDULES[run.task].__dict__), iters=final.get('iter', result.iters), wall_s=round(wall, 1),
        train_cpu_s=result.val_curve[-1]['train_s'] if result.val_curve else None, units='percent',
        metrics={k: percent(k, final.get(k)) for k in run.metrics},
        targets=TARGETS[run.task] if run.is_baseline else {}, curve=curve)


def _fmt(value) -> str:
    return '-' if value is None else f'{value:.1f}'


def summarize(out: PathLike) -> str:
    """Read every ``<out>/*.json`` record; write ``<out>/curves.csv`` (one row per validation) and
    ``<out>/summary.md`` (one row per model: final metrics, iterations, targets); return the markdown."""
    import csv
    import json
    out = Path(out)
    records = [json.loads(p.read_text()) for p in sorted(out.glob('*.json'))]
    order = {task: i for i, task in enumerate(TASKS)}
    records.sort(key=lambda r: (order.get(r['task'], 99), not r['is_baseline'], r['model']))
    with open(out / 'curves.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['key', 'task', 'model', 'is_baseline', 'iter', 'train_cpu_s', 'val_cpu_s', 'wall_s',
                         'metric', 'value'])
        for r in records:
            for point in r['curve']:
                for metric in TASK_METRICS[r['task']]:
                    if metric in point:
                        writer.writerow([r['key'], r['task'], r['model'], int(r['is_baseline']), point['iter'],
                                         point['train_s'], point['val_s'], point.get('wall_s'), metric,
                                         point[metric]])
    lines = ['| task | model | metrics (final) | curve: primary metric at CPU-minutes | iterations | wall min | '
             'target |', '|---|---|---|---|---|---|---|']
    for r in records:
        metrics = ', '.join(f'{k.split("/")[-1]} {_fmt(v)}' for k, v in r['metrics'].items())
        primary = TASK_METRICS[r['task']][0]
        curve = ' → '.join(f'{_fmt(p.get(primary))} @{p["train_s"] / 60:.1f}' for p in r['curve'])
        targets = r.get('targets') or {}
        reached = ', '.join(f'{k.split("/")[-1]} ≥ {v:g}: {"yes" if (r["metrics"].get(k) or 0) >= v else "no"}'
                            for k, v in targets.items())
        if r['curve'] and r['curve'][-1]['train_s'] < 0.99 * 60 * r['budget_cpu_minutes']:
            reached += ' (stopped early)'  # a run ended before its budget (killed): its last point is not final
        name = f'**{r["model"]}**' if r['is_baseline'] else r['model']
        lines.append(f'| {r["task"]} | {name} | {metrics} | {curve} | {r["iters"]} | {r["wall_s"] / 60:.0f} | '
                     f'{reached or "-"} |')
    text = '\n'.join(lines) + '\n'
    (out / 'summary.md').write_text(text)
    return text


def main(argv: Optional[List[str]] = None) -> None:
    """``python -m mmcluster.benchmark.protocol [--mode full] [--only KEY ...] [--family FAMILY ...]
    [--baselines-only] [--out DIR]``: train the runs that every given selector matches, one after the other;
    write ``<out>/<key>.json`` (:func:`result_record`) after each. A family is a ``configs/`` folder
    (:data:`FAMILIES`); the tasks' baselines are the ``baselines`` family."""
    import argparse
    import json
    parser = argparse.ArgumentParser(description='Train models under the toy benchmark protocol.')
    parser.add_argument('--mode', choices=MODES, default='full')
    parser.add_argument('--only', nargs='*', default=None,
                        help='substrings of run keys (<task>__<config stem>) or config file names to run; '
                        'default: all')
    parser.add_argument('--family', nargs='+', choices=FAMILIES, default=None, metavar='FAMILY',
                        help=f'only the runs of these model families ({", ".join(FAMILIES)}); add baselines to '
                        'train the tasks\' baselines too; default: all')
    parser.add_argument('--baselines-only', action='store_true')
    parser.add_argument('--work-dir', default=str(REPO / 'work_dirs' / 'protocol'))
    parser.add_argument('--out', default=str(REPO / 'docs' / 'benchmark' / 'protocol'))
    parser.add_argument('--summarize', action='store_true',
                        help='only (re)write <out>/summary.md and <out>/curves.csv from the JSON records')
    parser.add_argument('--collect', action='store_true',
                        help='rebuild the JSON records of the selected runs from their work dirs (no training), '
                        'then summarize')
    args = parser.parse_args(argv)
    if args.summarize:
        print(summarize(args.out))
        return
    runs = [r for r in protocol_runs(args.mode)
            if (not args.only or any(o in r.key or o == r.config.name for o in args.only))
            and (not args.family or r.family in args.family) and (r.is_baseline or not args.baselines_only)]
    if not runs:
        raise SystemExit(f'no run matches --only {args.only} --family {args.family} (baselines only: '
                         f'{args.baselines_only}); keys: {[r.key for r in protocol_runs(args.mode)]}')
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.collect:
        from mmcluster.utils.toy_run import read_run
        for run in runs:
            result = read_run(Path(args.work_dir) / args.mode / run.key)
            if result.val_curve:
                record = result_record(run, result, args.mode)
                (out / f'{run.key}.json').write_text(json.dumps(record, indent=1) + '\n')
                print(f'[protocol] {run.key}: {len(result.val_curve)} validations collected', flush=True)
        print(summarize(out))
        return
    data = prepare_data(args.mode)
    for run in runs:
        print(f'[protocol] {run.key}: {budget_minutes(args.mode)} CPU-minutes ...', flush=True)
        result = run_protocol(run, Path(args.work_dir) / args.mode / run.key, args.mode, data=data)
        record = result_record(run, result, args.mode)
        (out / f'{run.key}.json').write_text(json.dumps(record, indent=1) + '\n')
        print(f'[protocol] {run.key}: {result.iters} iterations, {record["metrics"]}', flush=True)
    summarize(out)


if __name__ == '__main__':
    main()


__all__ = ['MODES', 'TASKS', 'FAMILIES', 'TASK_METRICS', 'TARGETS', 'DATA', 'SCHEDULES', 'PANOPTIC_TEST_CFG',
           'TaskSchedule', 'ProtocolRun', 'protocol_runs', 'budget_minutes', 'val_every_minutes', 'input_size',
           'default_data_root', 'prepare_data', 'apply_protocol', 'protocol_config', 'run_protocol', 'result_record',
           'summarize']
