"""Cluster overlay drawing and collection from a ClusTR stage."""
import numpy as np
import pytest
import torch

from mmcluster.models.backbones.clustr import ClusTR
from mmcluster.visualization import cluster_colors, collect_clusters, draw_token_clusters


def test_draw_overlay_boundaries_and_png(tmp_path):
    labels = np.zeros((4, 6), dtype=np.int64)
    labels[:, 3:] = 1
    labels[2:, :] = 2
    image = np.full((16, 24, 3), 100, dtype=np.uint8)
    out = draw_token_clusters(image, torch.from_numpy(labels.reshape(-1)), (4, 6), centers=[0, 3, 12],
                              alpha=1.0, out_file=tmp_path / 'a' / 'clusters.png')
    assert out.shape == (16, 24, 3) and out.dtype == np.uint8
    colors = cluster_colors(3)
    assert (out[0, 0] == colors[0]).all() and (out[1, 22] == colors[1]).all() and (out[14, 1] == colors[2]).all()
    assert (out[1, 11] == 255).all() and (out[7, 2] == 255).all()  # boundaries (right / lower neighbour differs)
    assert (out[2:6, 2] == 0).any()  # centre mark of token 0
    from PIL import Image
    saved = np.asarray(Image.open(tmp_path / 'a' / 'clusters.png'))
    assert (saved == out).all()
    grey = draw_token_clusters(np.zeros((5, 7), np.uint8), labels, boundary_color=None, alpha=0.0)
    assert (grey == 0).all()
    with pytest.raises(ValueError, match='hw_shape'):
        draw_token_clusters(image, labels.reshape(-1), (5, 5))


def test_collect_from_clustr_stage(tmp_path):
    torch.manual_seed(0)
    arch = dict(depths=[1, 1, 1, 1], embed_dims=[8, 16, 16, 32], num_heads=[1, 2, 2, 4],
                ratios=[[16, 4], [4, 2], [2, 1], [1]], mlp_ratios=[2, 2, 2, 2])
    model = ClusTR(arch).train()
    img = torch.rand(1, 3, 50, 70)
    idx, centers, hw, ratio = collect_clusters(model, img, stage=0, scale=1)
    assert hw == (13, 18) and ratio == 4
    assert idx.shape == (13 * 18, ) and centers.shape == (-(-13 * 18 // 4), )
    assert model.training and not model.stages[0][0].attn.record_clusters
    out = draw_token_clusters((img[0].permute(1, 2, 0) * 255).byte(), idx, hw, centers,
                              out_file=tmp_path / 'stage0.png')
    assert out.shape == (50, 70, 3)
    with pytest.raises(ValueError, match='no clustered scale'):
        collect_clusters(model, img, stage=3)
