"""Tests of the toy-data generator (mmcluster/datasets/toy_data.py; command tools/make_toy_data.py): formats,
determinism, and that the real OpenMMLab loaders read the generated COCO / COCO-panoptic / ADE20K / ImageNet-style data unchanged."""
import filecmp
import json
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
from PIL import Image

from mmcluster.datasets import toy_data as toy

REPO = Path(__file__).resolve().parents[2]
NUM_TRAIN, NUM_VAL, PER_CLASS = 6, 4, 3


def generate(root: Path, seed: int = 0) -> Dict[str, str]:
    return toy.make_toy_data(root, seed=seed, num_train=NUM_TRAIN, num_val=NUM_VAL,
                             num_cls_per_class=PER_CLASS)


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('toy')
    generate(root)
    return root


def all_files(root: Path) -> List[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob('*') if p.is_file())


def read_json(path: Path) -> dict:
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def bbox_of(mask: np.ndarray) -> List[int]:
    """COCO [x, y, w, h] of a mask, computed independently of the generator."""
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def panoptic_ids(path: Path) -> np.ndarray:
    rgb = np.asarray(Image.open(path).convert('RGB'), np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256**2 * rgb[..., 2]


# ------------------------------------------------------------------------------- generator


def test_same_seed_same_bytes_other_seed_differs(data, tmp_path):
    paths = generate(tmp_path / 'again')
    files = all_files(data)
    assert files == all_files(tmp_path / 'again')
    assert len(files) == (2 * (NUM_TRAIN + NUM_VAL) * 2  # coco jpg + png, ade jpg + png
                          + 4  # coco jsons
                          + 5 * (PER_CLASS + max(1, PER_CLASS // 4)) + 2  # imagenet + meta
                          + 1)  # the completion stamp toy_data.json
    match, mismatch, errors = filecmp.cmpfiles(data, tmp_path / 'again', files, shallow=False)
    assert not mismatch and not errors
    assert Path(paths['coco_val_instances']).is_file() and Path(paths['imagenet']).is_dir()

    other = tmp_path / 'seed1'
    generate(other, seed=1)
    assert all_files(other) == files
    _, differ, _ = filecmp.cmpfiles(data, other, files, shallow=False)
    assert len(differ) > 0.9 * len(files)


def test_rerun_smaller_prunes_stale_files(tmp_path):
    toy.make_toy_data(tmp_path, num_train=3, num_val=2, num_cls_per_class=2, tasks=('coco',
                                                                                    'imagenet'))
    toy.make_toy_data(tmp_path, num_train=2, num_val=1, num_cls_per_class=1, tasks=('coco',
                                                                                    'imagenet'))
    assert len(list((tmp_path / 'coco' / 'train2017').iterdir())) == 2
    assert len(list((tmp_path / 'coco/annotations/panoptic_val2017').iterdir())) == 1
    assert len(list((tmp_path / 'imagenet' / 'train' / 'star').iterdir())) == 1
    assert not (tmp_path / 'ade').exists()


def test_stamp_and_command(tmp_path):
    """The stamp lists what a complete run wrote (tasks accumulate over runs with the same settings, and are
    reset by other settings); the command tools/make_toy_data.py writes the ADE20K layout it is asked for."""
    from conftest import load_tool
    assert toy.read_stamp(tmp_path) is None
    toy.make_toy_data(tmp_path, num_train=1, num_val=1, num_cls_per_class=1, tasks=('imagenet', ))
    assert toy.read_stamp(tmp_path)['tasks'] == ['imagenet']
    toy.make_toy_data(tmp_path, num_train=1, num_val=1, num_cls_per_class=1, tasks=('ade', ))
    assert toy.read_stamp(tmp_path)['tasks'] == ['ade', 'imagenet']
    toy.make_toy_data(tmp_path, seed=3, num_train=1, num_val=1, num_cls_per_class=1, tasks=('ade', ))
    assert toy.read_stamp(tmp_path) == dict(seed=3, num_train=1, num_val=1, num_cls_per_class=1,
                                            num_cls_val_per_class=1, tasks=['ade'])
    load_tool('tools/make_toy_data.py').main([str(tmp_path / 'cli'), '--num-train', '2', '--num-val', '1',
                                              '--tasks', 'ade'])
    assert all_files(tmp_path / 'cli') == [
        'ade/annotations/training/ADE_train_00000001.png', 'ade/annotations/training/ADE_train_00000002.png',
        'ade/annotations/validation/ADE_val_00000001.png', 'ade/images/training/ADE_train_00000001.jpg',
        'ade/images/training/ADE_train_00000002.jpg', 'ade/images/validation/ADE_val_00000001.jpg', 'toy_data.json'
    ]


def test_image_sizes_never_multiple_of_32(data):
    images = list(data.rglob('*.jpg'))
    assert len(images) == 2 * (NUM_TRAIN + NUM_VAL) + 5 * (PER_CLASS + 1)
    for path in images:
        w, h = Image.open(path).size
        assert 128 <= h <= 320 and 128 <= w <= 320, path
        assert h % 32 and w % 32, path


def test_mask_to_polygons_is_exact():
    """Pixel-corner polygons decode to exactly the input mask, incl. 1-px pieces and pieces that
    touch only at a corner (where pixel-centre contours lose pixels)."""
    mask_utils = pytest.importorskip('pycocotools.mask')
    rng = np.random.default_rng(0)
    masks = [np.eye(5, dtype=bool), np.pad(np.ones((1, 1), bool), 2)]
    for _ in range(40):
        m = rng.random((rng.integers(4, 20), rng.integers(4, 20))) < 0.35
        if not toy._has_holes(m):
            masks.append(m)
    for mask in masks:
        polygons = toy.mask_to_polygons(mask)
        assert all(len(p) >= 8 and len(p) % 2 == 0 for p in polygons)
        h, w = mask.shape
        decoded = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, h, w)))
        np.testing.assert_array_equal(decoded, mask)
    with pytest.raises(ValueError, match='hole'):
        toy.mask_to_polygons(np.pad(np.zeros((1, 1), bool), 1, constant_values=True))


# ------------------------------------------------------------------------------- COCO files


@pytest.mark.parametrize('split', ['train', 'val'])
def test_coco_instances(data, split):
    coco_api = pytest.importorskip('pycocotools.coco')
    ann_file = data / 'coco' / 'annotations' / f'instances_{split}2017.json'
    coco = coco_api.COCO(str(ann_file))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(toy.THING_CLASSES)
    assert coco.getCatIds() == [toy.THING_CATEGORY_IDS[n] for n in toy.THING_CLASSES]
    img_ids = coco.getImgIds()
    assert len(img_ids) == (NUM_TRAIN if split == 'train' else NUM_VAL)
    counts = []
    for img_id in img_ids:
        info = coco.loadImgs(img_id)[0]
        assert Image.open(data / 'coco' / f'{split}2017' / info['file_name']).size == (
            info['width'], info['height'])
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        counts.append(len(anns))
        for ann in anns:
            x, y, w, h = ann['bbox']
            assert 0 <= x and 0 <= y and w >= 1 and h >= 1
            assert x + w <= info['width'] and y + h <= info['height']
            mask = coco.annToMask(ann)
            assert abs(mask.sum() - ann['area']) <= max(1.0, 0.01 * ann['area'])
            assert bbox_of(mask) == ann['bbox']
            assert ann['iscrowd'] == 0 and all(len(p) >= 6 for p in ann['segmentation'])
    if split == 'train':
        assert min(counts) >= 1
    else:  # exactly one image without things, for empty-gt robustness
        assert counts.count(0) == 1 and counts[0] == 0


@pytest.mark.parametrize('split', ['train', 'val'])
def test_coco_panoptic(data, split):
    ann_dir = data / 'coco' / 'annotations'
    panoptic = read_json(ann_dir / f'panoptic_{split}2017.json')
    instances = read_json(ann_dir / f'instances_{split}2017.json')
    cats = {c['id']: c for c in panoptic['categories']}
    assert {c['id']: c['name'] for c in instances['categories']} == \
        {i: c['name'] for i, c in cats.items() if c['isthing']}
    assert [c['name'] for c in panoptic['categories'] if not c['isthing']] == \
        list(toy.STUFF_CLASSES)
    inst_by_image: Dict[int, list] = {}
    for ann in instances['annotations']:
        inst_by_image.setdefault(ann['image_id'], []).append(ann)
    assert [a['image_id'] for a in panoptic['annotations']] == \
        [i['id'] for i in panoptic['images']]
    for ann in panoptic['annotations']:
        ids = panoptic_ids(ann_dir / f'panoptic_{split}2017' / ann['file_name'])
        segments = ann['segments_info']
        assert set(np.unique(ids)) - {0} == {s['id'] for s in segments}
        for seg in segments:
            mask = ids == seg['id']
            assert seg['area'] == mask.sum()
            assert seg['bbox'] == bbox_of(mask)
        things = [s for s in segments if cats[s['category_id']]['isthing']]
        stuff = [s['category_id'] for s in segments if not cats[s['category_id']]['isthing']]
        assert len(stuff) == len(set(stuff)) >= 1  # one segment per stuff class
        inst = inst_by_image.get(ann['image_id'], [])
        assert sorted((s['category_id'], s['area'], tuple(s['bbox'])) for s in things) == \
            sorted((a['category_id'], a['area'], tuple(a['bbox'])) for a in inst)


@pytest.mark.parametrize('split', ['training', 'validation'])
def test_ade_label_values(data, split):
    allowed = {0, *toy.ADE_CLASS_IDS.values()}
    labels = sorted((data / 'ade' / 'annotations' / split).glob('*.png'))
    assert len(labels) == (NUM_TRAIN if split == 'training' else NUM_VAL)
    for path in labels:
        label = Image.open(path)
        assert label.mode == 'L'
        image = Image.open(data / 'ade' / 'images' / split / f'{path.stem}.jpg')
        assert label.size == image.size
        assert set(np.unique(np.asarray(label))) <= allowed


def test_imagenet_layout(data):
    root = data / 'imagenet'
    for split, per_class in (('train', PER_CLASS), ('val', max(1, PER_CLASS // 4))):
        assert sorted(p.name for p in (root / split).iterdir()) == list(toy.THING_CLASSES)
        lines = (root / 'meta' / f'{split}.txt').read_text().splitlines()
        assert len(lines) == 5 * per_class
        for line in lines:
            rel, label = line.split()
            assert (root / split / rel).is_file()
            assert rel.split('/')[0] == toy.THING_CLASSES[int(label)]


# ------------------------------------------------------------------------------- real loaders


def test_ade_ids_match_mmseg_class_names():
    pytest.importorskip('mmseg')
    from mmseg.datasets import ADE20KDataset
    classes = ADE20KDataset.METAINFO['classes']
    assert len(classes) == 150
    for ours, ade_name in toy.ADE_CLASS_NAMES.items():
        assert classes[toy.ADE_CLASS_IDS[ours] - 1].strip() == ade_name, ours
    assert set(toy.ADE_CLASS_IDS) == set(toy.THING_CLASSES + toy.STUFF_CLASSES)
    assert len(set(toy.ADE_CLASS_IDS.values())) == len(toy.ADE_CLASS_IDS)


def test_mmdet_coco_dataset(data):
    pytest.importorskip('mmdet')
    from mmdet.datasets import CocoDataset
    from mmdet.utils import register_all_modules
    from mmengine.registry import DefaultScope
    register_all_modules(init_default_scope=False)
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True, with_mask=True)]
    # Expected val labels / areas per image, mapping the non-contiguous category ids back to
    # positions in THING_CLASSES (what mmdet's cat2label must do).
    label_of_cat = {toy.THING_CATEGORY_IDS[n]: i for i, n in enumerate(toy.THING_CLASSES)}
    expected: Dict[int, list] = {}
    for ann in read_json(data / 'coco' / 'annotations' / 'instances_val2017.json')['annotations']:
        expected.setdefault(ann['image_id'], []).append(
            (label_of_cat[ann['category_id']], ann['area']))

    def coco_dataset(split: str, **kwargs) -> CocoDataset:
        return CocoDataset(data_root=str(data / 'coco'),
                           ann_file=f'annotations/instances_{split}2017.json',
                           data_prefix=dict(img=f'{split}2017/'),
                           metainfo=dict(classes=toy.THING_CLASSES), pipeline=pipeline, **kwargs)

    with DefaultScope.overwrite_default_scope('mmdet'):
        train = coco_dataset('train', filter_cfg=dict(filter_empty_gt=True, min_size=0))
        val = coco_dataset('val', test_mode=True)
        assert len(train) == NUM_TRAIN and len(val) == NUM_VAL
        for dataset in (train, val):
            for i in range(len(dataset)):
                out = dataset[i]
                h, w = out['img'].shape[:2]
                labels = out['gt_bboxes_labels']
                assert out['gt_masks'].masks.shape == (len(labels), h, w)
                assert len(out['gt_bboxes']) == len(labels) and set(labels) <= set(range(5))
                if dataset is val:
                    got = zip(labels.tolist(), out['gt_masks'].areas.tolist())
                    assert sorted(got) == sorted(expected.get(out['img_id'], []))
        assert len(val[0]['gt_bboxes_labels']) == 0  # the empty-gt val image survives
        # ... and is the only one mmdet's empty-gt filter drops in training mode.
        val_as_train = coco_dataset('val', filter_cfg=dict(filter_empty_gt=True))
        assert len(val_as_train) == NUM_VAL - 1


def test_mmdet_coco_panoptic_dataset(data):
    pytest.importorskip('mmdet')
    pytest.importorskip('panopticapi')
    from mmdet.datasets import CocoPanopticDataset
    from mmdet.utils import register_all_modules
    from mmengine.registry import DefaultScope
    register_all_modules(init_default_scope=False)
    metainfo = dict(classes=toy.THING_CLASSES + toy.STUFF_CLASSES, thing_classes=toy.THING_CLASSES,
                    stuff_classes=toy.STUFF_CLASSES)
    panoptic = read_json(data / 'coco' / 'annotations' / 'panoptic_val2017.json')
    num_things = {a['image_id']: sum(s['category_id'] in toy.THING_CATEGORY_IDS.values()
                                     for s in a['segments_info'])
                  for a in panoptic['annotations']}
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = CocoPanopticDataset(
            data_root=str(data / 'coco'), ann_file='annotations/panoptic_val2017.json',
            data_prefix=dict(img='val2017/', seg='annotations/panoptic_val2017/'),
            metainfo=metainfo,
            pipeline=[dict(type='LoadImageFromFile'),
                      dict(type='LoadPanopticAnnotations', with_bbox=True, with_mask=True,
                           with_seg=True)])
        assert len(dataset) == NUM_VAL
        for i in range(len(dataset)):
            out = dataset[i]
            h, w = out['img'].shape[:2]
            n = num_things[out['img_id']]
            assert out['gt_masks'].masks.shape == (n, h, w)
            assert out['gt_seg_map'].shape == (h, w)
            assert set(np.unique(out['gt_seg_map'])) <= set(range(9)) | {255}
            stuff_labels = set(np.unique(out['gt_seg_map'])) & set(range(5, 9))
            assert stuff_labels  # stuff lands on labels after the 5 things
            # Thing pixels in the semantic map agree with the instance masks.
            if n:
                thing_pixels = out['gt_masks'].masks.any(0)
                assert np.all(out['gt_seg_map'][thing_pixels] < 5)

    # The panopticapi evaluation logic (as vendored by mmdet) accepts the files and scores the
    # ground truth against itself perfectly on every category present.
    from mmdet.evaluation.functional import pq_compute_single_core
    seg_dir = str(data / 'coco' / 'annotations' / 'panoptic_val2017')
    categories = {c['id']: c for c in panoptic['categories']}
    stat = pq_compute_single_core(0, [(a, a) for a in panoptic['annotations']], seg_dir, seg_dir,
                                  categories)
    result, _ = stat.pq_average(categories, isthing=None)
    assert result['pq'] == pytest.approx(1.0) and result['n'] >= 3


def test_mmseg_ade20k_dataset(data):
    pytest.importorskip('mmseg')
    from mmengine.registry import DefaultScope
    from mmseg.datasets import ADE20KDataset
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    allowed = {v - 1 for v in toy.ADE_CLASS_IDS.values()} | {255}
    with DefaultScope.overwrite_default_scope('mmseg'):
        for split, num in (('training', NUM_TRAIN), ('validation', NUM_VAL)):
            dataset = ADE20KDataset(
                data_root=str(data / 'ade'),
                data_prefix=dict(img_path=f'images/{split}', seg_map_path=f'annotations/{split}'),
                pipeline=[dict(type='LoadImageFromFile'),
                          dict(type='LoadAnnotations', reduce_zero_label=True)])
            assert len(dataset) == num
            seen = set()
            for i in range(num):
                out = dataset[i]
                assert out['gt_seg_map'].shape == out['img'].shape[:2]
                values = set(np.unique(out['gt_seg_map']).tolist())
                assert values <= allowed
                seen |= values
            assert len(seen - {255}) >= 4  # several classes present, not all ignore


def test_mmpretrain_custom_dataset(data):
    pytest.importorskip('mmpretrain')
    from mmengine.registry import DefaultScope
    from mmpretrain.datasets import CustomDataset
    from mmpretrain.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    root = data / 'imagenet'
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        folder = CustomDataset(data_prefix=str(root / 'train'),
                               pipeline=[dict(type='LoadImageFromFile')])
        assert tuple(folder.metainfo['classes']) == toy.THING_CLASSES
        assert len(folder) == 5 * PER_CLASS
        for i in range(len(folder)):
            out = folder[i]
            cls = Path(out['img_path']).parent.name
            assert out['gt_label'] == toy.THING_CLASSES.index(cls)
            assert out['img'].ndim == 3
        # The ImageNet-style annotation file gives the same labels as the folder scan.
        annotated = CustomDataset(data_root=str(root), ann_file='meta/val.txt', data_prefix='val',
                                  metainfo=dict(classes=toy.THING_CLASSES))
        assert len(annotated) == 5 * max(1, PER_CLASS // 4)
        for i in range(len(annotated)):
            info = annotated.get_data_info(i)
            assert info['gt_label'] == toy.THING_CLASSES.index(Path(info['img_path']).parent.name)
