"""tools/visualization/cluster_map.py on a random-weight CoC-Tiny: the PNG's layout, its colours against an
independently computed assignment, checkpoint loading (model checkpoint with ``backbone.`` prefix) and errors."""
import numpy as np
import pytest
import torch
from conftest import REPO, load_tool
from PIL import Image

cm = load_tool('tools/visualization/cluster_map.py')
CONFIG = REPO / 'configs' / 'context_cluster' / 'coc-tiny_fpn_1xb8-toy_ade20k-256x256.py'
MEAN = np.array([123.675, 116.28, 103.53])
STD = np.array([58.395, 57.12, 57.375])


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    """A 74 x 90 RGB image (not a multiple of 4: the backbone pads) with two halves and noise."""
    rng = np.random.default_rng(0)
    img = np.zeros((74, 90, 3), np.uint8)
    img[:, :45] = (200, 60, 40)
    img[:, 45:] = (30, 90, 210)
    img = np.clip(img + rng.integers(-40, 40, img.shape), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp('img') / 'toy.png'
    Image.fromarray(img).save(path)
    return path, img


def expected_assign(backbone, img, stage, block, head):
    """Independent path: capture the token mixer's input with a hook and call it with return_assign."""
    layer = backbone.network[2 * stage][block].token_mixer
    seen = {}
    handle = layer.register_forward_hook(lambda m, args, out: seen.setdefault('x', args[0]))
    x = torch.from_numpy(((img - MEAN) / STD).transpose(2, 0, 1)).float()[None]
    with torch.no_grad():
        backbone.eval()(x)
        handle.remove()
        _, assign = layer(seen['x'], return_assign=True)
    stride = 4 * 2**stage
    labels = assign[0, head].numpy().repeat(stride, 0).repeat(stride, 1)
    return labels[:img.shape[0], :img.shape[1]]


def test_png_matches_assignment(image, tmp_path):
    path, img = image
    torch.manual_seed(1)
    from mmcluster.models.backbones.context_cluster import ContextCluster
    backbone = ContextCluster('tiny', out_indices=(0, 1, 2, 3))
    ckpt = tmp_path / 'model.pth'
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state['decode_head.conv_seg.weight'] = torch.zeros(1)  # a whole-model checkpoint: only backbone.* is used
    torch.save(dict(state_dict=state, meta=dict()), ckpt)
    out = tmp_path / 'sub' / 'clusters.png'
    result = cm.main([str(CONFIG), str(ckpt), str(path), '--stage', '0', '--block', '1', '--head', '2',
                      '--alpha', '1', '--out', str(out)])
    png = np.asarray(Image.open(out).convert('RGB'))
    H, W = img.shape[:2]
    assert png.shape == (H, 2 * W + cm.GAP, 3)
    assert (png[:, :W] == img).all() and (png[:, W:W + cm.GAP] == 255).all()
    labels = expected_assign(backbone, img, 0, 1, 2)
    assert (result['labels'] == labels).all()
    right = png[:, W + cm.GAP:].reshape(-1, 3)
    inside = ~(right == 255).all(axis=1)  # boundaries are white; no cluster colour is
    colours = {tuple(c) for c in right[inside]}
    ids = np.unique(labels)
    assert len(ids) > 8 and len(colours) == len(ids) == result['num_clusters']
    # one colour per cluster, one cluster per colour
    pairs = {(int(i), tuple(c)) for i, c in zip(labels.reshape(-1)[inside], right[inside])}
    assert len(pairs) == len(ids)
    # a boundary pixel is where the right or lower neighbour is in another cluster
    edge = np.zeros_like(labels, bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1] |= labels[:-1] != labels[1:]
    assert (edge.reshape(-1) == ~inside).all()
    assert (result['canvas'] == png).all()


def test_random_weights_blend_and_errors(image, tmp_path):
    path, img = image
    a = cm.cluster_map(CONFIG, 'none', path, stage=2, block=-1, head=7, alpha=0.5, seed=3)
    b = cm.cluster_map(CONFIG, 'none', path, stage=2, block=-1, head=7, alpha=0.5, seed=3)
    assert (a['canvas'] == b['canvas']).all() and a['labels'].shape == img.shape[:2]
    # stage 2: stride 16 -> a 5 x 6 map; 2 x 2 regions (fold 2) of 4 centres
    assert set(np.unique(a['labels'])) <= set(range(16))
    with pytest.raises(ValueError, match='heads'):
        cm.cluster_map(CONFIG, 'none', path, stage=2, block=0, head=8)
    with pytest.raises(ValueError, match='blocks'):
        cm.cluster_map(CONFIG, 'none', path, stage=3, block=2, head=0)
    bad = tmp_path / 'bad.pth'
    torch.save({'state_dict': {'backbone.network.0.0.layer_scale_1': torch.ones(32)}}, bad)
    with pytest.raises(KeyError, match='does not fit'):
        cm.cluster_map(CONFIG, str(bad), path, stage=0, block=0, head=0)
    base = REPO / 'configs' / 'baselines' / 'fpn_r18_1xb8-toy_ade20k-256x256.py'
    with pytest.raises(ValueError, match='not a ContextCluster'):
        cm.cluster_map(base, 'none', path, stage=0, block=0, head=0)
