"""tools/visualization/cluster_map.py on the kMaX toy config: the k-means layers' assignments are drawn (the
blog's figure: one panoptic-like map per k-means iteration), through the model's predict path."""
import numpy as np
import pytest
from conftest import REPO, load_tool
from PIL import Image


def test_kmax_toy_config_draws_every_kmeans_iteration(tmp_path):
    pytest.importorskip('mmdet.models')
    tool = load_tool('tools/visualization/cluster_map.py')
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (70, 90, 3)).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / 'img.png')
    config = REPO / 'configs/kmax_deeplab/kmax-deeplab_r18_1xb2-toy_coco-panoptic.py'
    result = tool.main([str(config), 'none', str(tmp_path / 'img.png'), '--out', str(tmp_path / 'kmax.png')])
    assert result.mode == 'predict' and result.input_hw == (96, 96)  # padded to a multiple of 32
    # the toy decoder has one k-means layer per stride (32, 16, 8): three maps, in order
    titles = [p.title for p in result.panels]
    assert len(titles) == 3
    assert all(f'kmax_transformer_layers.{i}' in t for i, t in enumerate(titles))
    # on the pixel features of stride 32, 16 and 8 of the 96 x 96 input, drawn on the 70 x 90 image
    assert [(p.step, p.grid) for p in result.panels] == [(0, (3, 3)), (1, (6, 6)), (2, (12, 12))]
    assert all(p.labels.shape == (70, 90) for p in result.panels)
    assert (tmp_path / 'kmax.png').exists()
