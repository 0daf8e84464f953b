"""tools/visualization/token_clusters.py: a PNG of the image's size with one colour per cluster, from random
weights (CHECKPOINT none) and from a model checkpoint (keys 'backbone.*')."""
import math

import numpy as np
import pytest
import torch
from conftest import REPO, load_tool
from PIL import Image

pytest.importorskip('mmpretrain.models')

CONFIG = REPO / 'configs' / 'clustr' / 'clustr-t_1xb32-toy_imagenet.py'


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools/visualization/token_clusters.py')


@pytest.fixture
def image(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (80, 112, 3), dtype=np.uint8)
    img[:40, :56] = (200, 30, 30)  # some structure besides the noise
    path = tmp_path / 'image.png'
    Image.fromarray(img).save(path)
    return path


def cluster_colours(png):
    """Distinct colours of a PNG drawn with alpha 1 (pure palette), without boundaries (white) and centres
    (black); the palette never produces either (saturation >= 0.55, value >= 0.7)."""
    pixels = np.asarray(Image.open(png).convert('RGB')).reshape(-1, 3)
    return {tuple(p) for p in np.unique(pixels, axis=0)} - {(255, 255, 255), (0, 0, 0)}


def test_random_weights(tool, image, tmp_path):
    out = tmp_path / 'vis' / 'stage0.png'
    summary = tool.main([str(CONFIG), 'none', str(image), '--stage', '0', '--scale', '1', '--alpha', '1',
                         '--out', str(out)])
    assert out.is_file() and Image.open(out).size == (112, 80)
    # stage 0 of ClusTR-T: 20 x 28 tokens, ratios (64, 16): scale 1 = ratio 16 -> ceil(560 / 16) = 35 clusters
    assert summary['grid'] == (20, 28) and summary['ratio'] == 16
    assert summary['num_clusters'] == summary['nonempty_clusters'] == math.ceil(20 * 28 / 16)
    assert len(cluster_colours(out)) == summary['num_clusters']
    # --size: resized to a short side of 96 first; stage 1 of 96 x 134: 12 x 17 tokens, ratio 16 -> 13 clusters
    out = tmp_path / 'stage1.png'
    summary = tool.main([str(CONFIG), 'none', str(image), '--stage', '1', '--layer', '0', '--size', '96',
                         '--alpha', '1', '--out', str(out)])
    assert Image.open(out).size == (134, 96)
    assert summary['grid'] == (12, 17) and summary['ratio'] == 16 and summary['num_clusters'] == 13
    assert len(cluster_colours(out)) == 13


def test_model_checkpoint(tool, image, tmp_path):
    """A classifier checkpoint's 'backbone.*' keys are loaded (the head's are ignored): the tool's clusters are
    those of that backbone on the image normalised with the config's mean / std (RGB)."""
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope

    from mmcluster.visualization import collect_clusters
    cfg = Config.fromfile(str(CONFIG))
    init_default_scope(cfg.default_scope)
    torch.manual_seed(1)
    model = MODELS.build(cfg.model)
    model.init_weights()
    ckpt = tmp_path / 'iter_2.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    summary = tool.main([str(CONFIG), str(ckpt), str(image), '--stage', '2', '--out', str(tmp_path / 's2.png')])
    mean = np.array([123.675, 116.28, 103.53], np.float32)
    std = np.array([58.395, 57.12, 57.375], np.float32)
    img = (np.asarray(Image.open(image).convert('RGB')).astype(np.float32) - mean) / std
    idx, centers, hw, ratio = collect_clusters(model.backbone, torch.from_numpy(img.transpose(2, 0, 1))[None],
                                               stage=2, block=-1, scale=0)
    assert summary['grid'] == hw == (5, 7) and summary['ratio'] == ratio == 4
    assert torch.equal(summary['idx_cluster'], idx) and torch.equal(summary['centers'], centers)
    torch.save(dict(state_dict={'backbone.stages.0.0.attn.q.weight': torch.zeros(1)}), tmp_path / 'bad.pth')
    with pytest.raises(SystemExit, match='do not match'):
        tool.main([str(CONFIG), str(tmp_path / 'bad.pth'), str(image), '--stage', '0', '--out',
                   str(tmp_path / 'bad.png')])
