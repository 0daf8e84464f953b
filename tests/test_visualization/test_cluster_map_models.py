"""tools/visualization/cluster_map.py on the real models' toy configs: what it draws is what the model's modules
record on the image as the toolkit preprocesses it (Context Clusters), the clusters have the sizes the papers'
rules give (ClusTR: ceil(N / ratio) DPC-kNN clusters), and HCFormer's levels nest and stay in their 3x3 windows."""
import math

import numpy as np
import pytest
import torch
from conftest import REPO, load_tool
from PIL import Image

from mmcluster.models.utils.cluster_record import recording_clusters


def one_config(pattern: str):
    found = sorted(REPO.glob(f'configs/{pattern}'))
    assert len(found) == 1, (pattern, found)
    return found[0]


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools/visualization/cluster_map.py')


def save_image(path, h, w, seed=0):
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :w // 2] = (200, 60, 40)
    img[:, w // 2:] = (30, 90, 210)
    img = np.clip(img + rng.integers(-40, 40, img.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)
    return img


def test_context_cluster_maps_are_the_recorded_assignments(tool, tmp_path):
    """Whole-model checkpoint of the toy CoC-Tiny segmentor; the expected maps come from running the backbone
    on the image normalised by hand (the config's mean / std, RGB) and upsampling by the stage stride."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope
    pytest.importorskip('mmseg.models')
    config = one_config('context_cluster/*coc-tiny*toy_ade20k*.py')
    img = save_image(tmp_path / 'img.png', 74, 90)  # not a multiple of 4: the backbone pads inside
    cfg = Config.fromfile(str(config))
    init_default_scope(cfg.default_scope)
    torch.manual_seed(1)
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save(dict(state_dict=model.state_dict(), meta={}), tmp_path / 'model.pth')

    result = tool.main([str(config), str(tmp_path / 'model.pth'), str(tmp_path / 'img.png'), '--select',
                        'network.0.1.', 'network.4.0.', '--out', str(tmp_path / 'coc.png')])
    assert result.input_hw == (74, 90)  # the segmentor's preprocessor does not pad at test time

    pre = cfg.model.data_preprocessor
    x = (img.astype(np.float64) - np.array(pre.mean)) / np.array(pre.std)  # PNG read as RGB: already RGB
    x = torch.from_numpy(x.transpose(2, 0, 1)).float()[None]
    with torch.no_grad(), recording_clusters(model.backbone) as records:
        model.backbone.eval()(x)
    expected = {}
    for rec in records:
        stage = int(rec.name.split('.')[1]) // 2
        if rec.name.startswith(('network.0.1.', 'network.4.0.')):
            stride = 4 * 2**stage
            for e, grid in enumerate(rec.labels()[0].numpy()):
                expected[(f'backbone.{rec.name}', e)] = grid.repeat(stride, 0).repeat(stride, 1)[:74, :90]
    heads = model.backbone.network[0][1].token_mixer.heads + model.backbone.network[4][0].token_mixer.heads
    assert len(expected) == heads == len(result.panels)
    for panel in result.panels:
        assert (panel.labels == expected[(panel.record, panel.head)]).all(), panel.title
        assert panel.num_clusters > 1


def test_clustr_cluster_counts(tool, tmp_path):
    """ClusTR-T, random weights: stage 0 of an 80 x 112 image has 20 x 28 tokens and reduction ratios 64 and 16,
    so DPC-kNN keeps ceil(560 / 64) = 9 and ceil(560 / 16) = 35 centres, every one a non-empty cluster."""
    pytest.importorskip('mmpretrain.models')
    config = one_config('clustr/clustr-t_*toy_imagenet*.py')
    save_image(tmp_path / 'img.png', 80, 112)
    result = tool.main([str(config), 'none', str(tmp_path / 'img.png'), '--select', 'stages.0.0.', '--alpha', '1',
                        '--out', str(tmp_path / 'clustr.png')])
    got = sorted((p.meta['ratio'], p.grid, p.num_clusters) for p in result.panels)
    assert got == [(16, (20, 28), 35), (64, (20, 28), 9)]
    assert all(len(np.unique(p.labels)) == p.num_clusters for p in result.panels)  # every cluster is seen


def test_hcformer_levels_nest(tool, tmp_path):
    """HCFormer toy (mmdet), random weights, 70 x 90 padded to 96 x 96: one chain of three levels drawn on the
    stride-4 grid; every stride-4 cell is assigned to one of the 3 x 3 stride-8 cells around its parent, each
    level is a union of the finer level's clusters, and the top level has at most the 3 x 3 stride-32 cells."""
    pytest.importorskip('mmdet.models')
    config = one_config('hcformer/hcformer_r18_*toy_coco-panoptic*.py')
    save_image(tmp_path / 'img.png', 70, 90)
    gt = np.zeros((70, 90), np.uint8)
    gt[:, 40:] = 3
    gt[:10] = 0
    Image.fromarray(gt).save(tmp_path / 'gt.png')
    result = tool.main([str(config), 'none', str(tmp_path / 'img.png'), '--gt', str(tmp_path / 'gt.png'),
                        '--ignore-value', '0', '--out', str(tmp_path / 'hc.png')])
    assert result.input_hw == (96, 96)
    assert [p.depth for p in result.panels] == [0, 1, 2] and len({p.record for p in result.panels}) == 1
    leaf = result.panels[0].grid_labels  # stride-8 cell ids (12 x 12 grid) of the 24 x 24 stride-4 cells
    assert leaf.shape == (24, 24)
    i, j = np.mgrid[:24, :24]
    qy, qx = leaf // 12, leaf % 12
    assert (np.abs(qy - i // 2) <= 1).all() and (np.abs(qx - j // 2) <= 1).all()
    for fine, coarse in zip(result.panels, result.panels[1:]):
        for label in np.unique(fine.labels):
            assert len(np.unique(coarse.labels[fine.labels == label])) == 1
    assert result.panels[2].num_clusters <= 9
    for panel in result.panels:
        assert 0 <= panel.scores['ue'] <= 1 and 0 <= panel.scores['asa'] <= 1
        assert math.isfinite(panel.scores['ue'])



def family_toy_configs():
    """One toy config per model family folder (new families are picked up without listing them)."""
    found = {}
    for path in sorted(REPO.glob('configs/*/*toy*.py')):
        family = path.parent.name
        if family not in ('_base_', 'baselines'):
            found.setdefault(family, path)
    return [pytest.param(path, id=family) for family, path in found.items()]


@pytest.mark.parametrize('config', family_toy_configs())
def test_every_family_draws(tool, config, tmp_path):
    """Whatever a family records can be drawn: every panel is a label map of the image's size, and the PNG grid
    and its JSON are written."""
    save_image(tmp_path / 'img.png', 70, 90)
    out = tmp_path / 'map.png'
    result = tool.main([str(config), 'none', str(tmp_path / 'img.png'), '--heads', '0', '--out', str(out)])
    assert result.panels and all(p.labels.shape == (70, 90) and p.num_clusters >= 1 for p in result.panels)
    assert out.is_file() and out.with_suffix('.json').is_file()


def test_a_model_without_clustering_is_refused(tool, tmp_path):
    save_image(tmp_path / 'img.png', 40, 50)
    with pytest.raises(ValueError, match='no clustering module'):
        tool.main([str(REPO / 'configs/baselines/resnet18_1xb32-toy_imagenet.py'), 'none', str(tmp_path / 'img.png'),
                   '--out', str(tmp_path / 'x.png')])
