"""Discovery of every registered mmcluster backbone and its variants, shared by the registry-driven suites
(``tests/test_models/test_registry_models.py``, ``tests/test_reliability/``).

Backbones are found by walking the registry (classes defined under ``mmcluster.models.backbones``) and their
variants by reading the class's own table (``arch_settings`` / ``arch_zoo`` on the class, else the
``ARCH_SETTINGS`` of its module), so a new backbone or variant is covered without touching any test. The
variant is passed as ``arch`` (or ``depth``, mmdet ResNet style) as the table's signature says; a backbone
without a table is built with its defaults.
"""
import copy
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import torch

import mmcluster  # noqa: F401  (registration)
# re-exported for the suites (``from registry_cases import variants, build, ...``)
from mmcluster.models.utils.discovery import backbone_classes as backbones
from mmcluster.models.utils.discovery import build_backbone as build  # noqa: F401
from mmcluster.models.utils.discovery import num_params, variant_argument, variant_table, variants  # noqa: F401
from mmcluster.models.utils.discovery import smallest_variant


def cases() -> Iterator[Tuple[type, Any]]:
    """``pytest.param(cls, variant)`` for every variant of every backbone."""
    for cls in backbones():
        for key in variants(cls):
            yield pytest.param(cls, key, id=f'{cls.__name__}-{"default" if key is None else key}')


def smallest_cases() -> Iterator[Tuple[type, Any]]:
    """``pytest.param(cls, variant)`` for the smallest variant of every backbone."""
    for cls in backbones():
        key = smallest_variant(cls)
        yield pytest.param(cls, key, id=f'{cls.__name__}-{"default" if key is None else key}')


@pytest.fixture(autouse=True)
def one_thread():
    """One CPU thread per test (autouse where imported: ``from registry_cases import one_thread``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tensors(out: Any) -> Iterator[torch.Tensor]:
    """Every tensor in a (nested) output."""
    if isinstance(out, torch.Tensor):
        yield out
    elif isinstance(out, dict):
        for value in out.values():
            yield from tensors(value)
    elif isinstance(out, (list, tuple)):
        for value in out:
            yield from tensors(value)


# --------------------------------------------------------------------------- toy configs (necks and heads)
#: the toy configs of the mmcluster families (configs/<family>/*toy*.py); the baselines are the toolkits' own
#: models and are left to their own tests
TOY_CONFIG_GLOB = '*/*toy*.py'
NOT_MMCLUSTER = ('_base_', 'baselines')


def toy_configs() -> List[Any]:
    """``pytest.param(path)`` for the toy config of every mmcluster family, id ``<family>/<name>``."""
    from conftest import REPO
    paths = sorted(p for p in (REPO / 'configs').glob(TOY_CONFIG_GLOB) if p.parent.name not in NOT_MMCLUSTER)
    return [pytest.param(p, id=f'{p.parent.name}/{p.stem}') for p in paths]


def toy_config_scope(path) -> str:
    """The toolkit of a toy config: its ``default_scope`` (``mmdet`` / ``mmseg`` / ``mmpretrain``)."""
    return load_config(path).default_scope


_CONFIGS: Dict[str, Any] = {}


def load_config(path):
    """``Config.fromfile`` once per session (parsing imports the toolkit and costs ~0.5 s)."""
    from mmengine.config import Config
    key = str(path)
    if key not in _CONFIGS:
        _CONFIGS[key] = Config.fromfile(key)
    return _CONFIGS[key]


def build_toy_model(path, train: bool = True, seed: int = 0, **model_overrides: Any) -> torch.nn.Module:
    """The whole model of a toy config (backbone, neck, head, data preprocessor) built as the Runner builds it
    (:func:`e2e.build`: the registry of the config's default scope) and initialised (``init_weights``), with
    ``model_overrides`` merged into ``cfg.model`` (e.g. ``neck=dict(in_channels=[8, 16])``)."""
    from e2e import build as build_from_config
    from mmengine.logging import MMLogger
    cfg = copy.deepcopy(load_config(path))
    cfg.merge_from_dict(dict(model=model_overrides))
    torch.manual_seed(seed)
    model = build_from_config(cfg)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')  # init_weights logs every parameter at INFO
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    model.train(train)
    return model


_TOY_MODELS: Dict[str, Tuple[torch.nn.Module, Dict[str, torch.Tensor]]] = {}


def toy_model(path, train: bool = True) -> torch.nn.Module:
    """:func:`build_toy_model` built once per session and handed out in its initial state each time: the
    buffers (BatchNorm statistics) are restored and :func:`train_step` undoes its update, so a step in one test
    does not leak into the next. Only the buffers are copied (the parameters would double the memory of ~20
    cached models)."""
    key = str(path)
    if key not in _TOY_MODELS:
        model = build_toy_model(path)
        _TOY_MODELS[key] = model, {k: v.clone() for k, v in model.named_buffers()}
    model, buffers = _TOY_MODELS[key]
    with torch.no_grad():
        for k, v in model.named_buffers():
            v.copy_(buffers[k])
    model.train(train)
    return model


_BACKBONES: Dict[Tuple[type, Any], torch.nn.Module] = {}


def cached_backbone(cls: type, variant: Any) -> torch.nn.Module:
    """``build(cls, variant)`` with ``init_weights``, once per session, in eval mode (callers must not change
    its parameters)."""
    if (cls, variant) not in _BACKBONES:
        torch.manual_seed(0)
        model = build(cls, variant)
        model.init_weights()
        _BACKBONES[cls, variant] = model
    model = _BACKBONES[cls, variant]
    model.train(False)
    model.zero_grad(set_to_none=True)
    return model


#: degenerate ground truths of issue 13 (item 2); ``'objects'`` is the ordinary case they are compared with
GT_CASES = ('objects', 'empty', 'few-pixels', 'one-pixel', 'crowd-only')


def _object_boxes(gt: str, h: int, w: int) -> List[Tuple[int, int, int, int]]:
    """``(x0, y0, x1, y1)`` pixel boxes (exclusive ends) of the objects of a ground-truth case, each at least
    one pixel inside the image (the toolkits' datasets drop empty boxes before any model sees them)."""
    if gt in ('objects', 'crowd-only'):
        boxes = [(w // 8, h // 8, w // 2, h // 2), (w // 2, h // 3, w - 1, h - 1)][:1 if gt == 'crowd-only' else 2]
    elif gt == 'few-pixels':
        boxes = [(w // 2, h // 2, w // 2 + 3, h // 2 + 2)]  # 3 x 2 pixels
    elif gt == 'one-pixel':
        boxes = [(w // 3, h // 3, w // 3 + 1, h // 3 + 1)]
    elif gt == 'empty':
        boxes = []
    else:
        raise ValueError(f'unknown ground-truth case {gt!r}; valid: {GT_CASES}')
    clamped = []
    for x0, y0, x1, y1 in boxes:
        x0, y0 = min(x0, w - 1), min(y0, h - 1)
        clamped.append((x0, y0, min(max(x1, x0 + 1), w), min(max(y1, y0 + 1), h)))
    return clamped


def toy_batch(path, size: Tuple[int, int], gt: str = 'objects', batch: int = 1, seed: int = 0) -> Dict:
    """A batch as the config's dataloader yields it: images made here (uint8, ``size``) with a ground truth
    ``gt`` (:data:`GT_CASES`), packed by the toolkit's own transform (``PackDetInputs`` / ``PackSegInputs`` /
    ``PackInputs``, as the config's pipeline ends) from the keys its loading transforms produce.

    * mmdet: boxes, labels, bitmap masks and ``gt_ignore_flags`` (``iscrowd`` -> ignore flag, as
      ``CocoDataset`` / ``CocoPanopticDataset`` set it, so ``PackDetInputs`` moves crowds to
      ``ignored_instances``); panoptic configs also get the semantic map of ``LoadPanopticAnnotations``
      (the category of each segment's pixels, 255 elsewhere).
    * mmseg: the label map (ADE20K class indices, 255 = ignore): the objects' pixels labelled, the rest ignored
      (``'empty'``: an all-ignore map).
    * mmpretrain: a class label (``gt`` must be ``'objects'``).
    """
    import numpy as np
    cfg = load_config(path)
    scope = cfg.default_scope
    h, w = size
    rng = np.random.default_rng(seed)
    inputs, samples = [], []
    for _ in range(batch):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        boxes = _object_boxes(gt, h, w)
        results = dict(img=img, img_shape=(h, w), ori_shape=(h, w), img_path=f'generated_{h}x{w}.jpg',
                       img_id=0, scale_factor=(1.0, 1.0), flip=False, flip_direction=None)
        if scope == 'mmdet':
            results.update(_det_annotations(cfg, boxes, gt == 'crowd-only', h, w))
            from mmdet.datasets.transforms import PackDetInputs as Pack
        elif scope == 'mmseg':
            seg = np.full((h, w), 255, dtype=np.uint8)
            for k, (x0, y0, x1, y1) in enumerate(boxes):
                seg[y0:y1, x0:x1] = 1 + k
            results.update(gt_seg_map=seg, seg_fields=['gt_seg_map'], reduce_zero_label=True)
            from mmseg.datasets.transforms import PackSegInputs as Pack
        else:
            if gt != 'objects':
                raise ValueError(f'{scope} has no {gt!r} ground truth (one class label per image)')
            results.update(gt_label=1)
            from mmpretrain.datasets.transforms import PackInputs as Pack
        packed = Pack().transform(results)
        inputs.append(packed['inputs'])
        samples.append(packed['data_samples'])
    return dict(inputs=inputs, data_samples=samples)


def _det_annotations(cfg, boxes, crowd: bool, h: int, w: int) -> Dict:
    """What mmdet's ``LoadAnnotations`` / ``LoadPanopticAnnotations`` produce for ``boxes`` (labels 1, 2, ...)."""
    import numpy as np
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks
    masks = np.zeros((len(boxes), h, w), dtype=np.uint8)
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        masks[k, y0:y1, x0:x1] = 1
    labels = np.arange(1, len(boxes) + 1, dtype=np.int64)
    out = dict(gt_bboxes=HorizontalBoxes(np.array(boxes, dtype=np.float32).reshape(-1, 4)),
               gt_bboxes_labels=labels, gt_masks=BitmapMasks(masks, h, w),
               gt_ignore_flags=np.full(len(boxes), crowd, dtype=bool))
    if 'panoptic' in cfg.train_dataloader.dataset.type.lower():
        seg = np.full((h, w), 255, dtype=np.uint8)  # VOID
        for k in range(len(boxes)):
            seg[masks[k] > 0] = labels[k]
        out.update(gt_seg_map=seg)
    return out


def train_step(model: torch.nn.Module, batch: Dict, lr: float = 1e-3) -> Dict[str, Any]:
    """One training step as mmengine's ``BaseModel.train_step`` makes it (data preprocessor, ``mode='loss'``,
    ``parse_losses``, backward, SGD update), then the update undone and the gradients released (the model is
    shared by the tests, :func:`toy_model`).

    Returns:
        ``losses`` (the parsed log values), ``loss`` (the total), ``bad_grads`` (trainable parameters whose
        gradient is not finite) and ``no_grads`` (those without a gradient).
    """
    data = model.data_preprocessor(batch, True)
    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    for _, p in params:
        p.grad = None
    loss.backward()
    bad = [n for n, p in params if p.grad is not None and not torch.isfinite(p.grad).all()]
    stepped = [p for _, p in params if p.grad is not None]
    torch.optim.SGD(stepped, lr=lr).step()
    result = dict(loss=float(loss.detach()), losses={k: float(v) for k, v in log_vars.items()}, bad_grads=bad,
                  no_grads=[n for n, p in params if p.grad is None])
    with torch.no_grad():
        for p in stepped:
            if torch.isfinite(p.grad).all():
                p.add_(p.grad, alpha=lr)  # undo the plain SGD step
            p.grad = None
    return result


def predict(model: torch.nn.Module, batch: Dict) -> List[Any]:
    """``mode='predict'`` in eval mode, as mmengine's ``val_step`` runs it."""
    with torch.no_grad():
        return model.val_step(batch)


def check_predictions(samples: List[Any], size: Tuple[int, int]) -> str:
    """Assert that the predictions of :func:`predict` are finite and, for maps and masks, of the input ``size``
    (the toolkits rescale them to ``ori_shape``); return what was checked, e.g. ``'pred_sem_seg 33x47'``."""
    from mmengine.structures import InstanceData, PixelData
    checked = []
    for sample in samples:
        for key in sorted(k for k in sample.keys() if k.startswith('pred') or k == 'seg_logits'):
            value = getattr(sample, key)
            items = dict(value.items()) if isinstance(value, (InstanceData, PixelData)) else {'': value}
            for name, t in items.items():
                if not isinstance(t, torch.Tensor):
                    continue
                where = f'{key}.{name}' if name else key
                if t.is_floating_point():
                    assert torch.isfinite(t).all(), f'{where}: non-finite values'
                if isinstance(value, PixelData) or name == 'masks':  # rescaled to ori_shape
                    assert tuple(t.shape[-2:]) == tuple(size), f'{where}: shape {tuple(t.shape)}, input {size}'
            checked.append(key)
    assert checked, 'no prediction in the data samples'
    return ', '.join(sorted(set(checked)))
