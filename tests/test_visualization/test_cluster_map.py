"""tools/visualization/cluster_map.py on a model of small fake clustering modules whose clusters are known in
closed form from the pixel geometry and colours: the data preprocessor path, per-head records, parent chains,
the PNG grid, ground-truth scores, checkpoints and errors."""
import json

import numpy as np
import pytest
import torch
from conftest import load_tool
from mmengine.model import BaseModule
from PIL import Image
from torch import nn

from mmcluster.models.utils.cluster_record import ClusterRecorder
from mmcluster.registry import MODELS
from mmcluster.visualization import draw_cluster_map, record_panels
from mmcluster.visualization.drawing import GAP, TITLE_HEIGHT

pytest.importorskip('mmpretrain.models')

H, W = 37, 50  # the image; the preprocessor pads to 48 x 64 (pad_size_divisor 16)
IN_H, IN_W = 48, 64


class _Sign(BaseModule, ClusterRecorder):
    """Stride 1: cluster 1 where channel 0 of the normalised input is positive (R > 128 after BGR -> RGB)."""

    def forward(self, x):
        self.record_clusters((x[:, 0] > 0).long().flatten(1), x.shape[-2:], 2)


class _Heads(BaseModule, ClusterRecorder):
    """Stride 4, two heads: head 0 = column cell // 2, head 1 = row cell // 2."""

    def forward(self, x):
        h, w = -(-x.shape[2] // 4), -(-x.shape[3] // 4)
        r, c = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
        ids = torch.stack([c // 2, r // 2]).flatten(1)[None].expand(x.shape[0], -1, -1)
        self.record_clusters(ids, (h, w), int(ids.max()) + 1, meta=dict(stride=4))


class _Coarse(BaseModule, ClusterRecorder):
    """Stride 4: two clusters, the left and the right half of the cells (soft memberships)."""

    def forward(self, x):
        h, w = x.shape[2] // 4, x.shape[3] // 4
        right = (torch.arange(w) >= w // 2).long().repeat(h)
        soft = torch.nn.functional.one_hot(right, 2).float() * 0.8 + 0.1
        self.record_clusters(soft[None].expand(x.shape[0], -1, -1), (h, w), 2, kind='soft')


class _Fine(BaseModule, ClusterRecorder):
    """Stride 2: every cell assigned to its parent cell of the stride-4 grid (``_Coarse``'s tokens)."""

    def forward(self, x):
        h, w = x.shape[2] // 2, x.shape[3] // 2
        r, c = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
        ids = ((r // 2) * (w // 2) + c // 2).flatten()[None].expand(x.shape[0], -1)
        parent = self._cluster_sink[0].replace('fine', 'coarse')
        self.record_clusters(ids, (h, w), (h // 2) * (w // 2), cluster_shape=(h // 2, w // 2), parent=parent)


class FakeClusterNet(BaseModule):
    """A 'backbone' that returns its input after one 1x1 conv and records four clusterings."""

    def __init__(self, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.conv = nn.Conv2d(3, 3, 1)
        self.sign, self.heads, self.coarse, self.fine = _Sign(), _Heads(), _Coarse(), _Fine()

    def forward(self, x):
        for m in (self.sign, self.heads, self.coarse, self.fine):
            m(x)
        return (self.conv(x), )


for registry in (MODELS, MODELS.parent):
    registry.register_module(name='FakeClusterNet', module=FakeClusterNet, force=True)

CONFIG = """
default_scope = 'mmpretrain'
model = dict(type='ImageClassifier', backbone=dict(type='FakeClusterNet',
             init_cfg=dict(type='Pretrained', checkpoint='https://example.invalid/never-downloaded.pth')))
data_preprocessor = dict(mean=[128., 128., 128.], std=[1., 1., 1.], to_rgb=True, pad_size_divisor=16)
"""


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools/visualization/cluster_map.py')


@pytest.fixture
def files(tmp_path):
    """Config, and an RGB image: red on the left (x < 20), blue on the right."""
    config = tmp_path / 'fake.py'
    config.write_text(CONFIG)
    img = np.zeros((H, W, 3), np.uint8)
    img[:, :20] = (220, 40, 30)
    img[:, 20:] = (30, 60, 230)
    Image.fromarray(img).save(tmp_path / 'img.png')
    return config, tmp_path / 'img.png', img


def panel_pixels(canvas, index, cols):
    """Panel ``index`` (0 = the image) of a titled grid of H x W panels."""
    r, c = divmod(index, cols)
    top = r * (TITLE_HEIGHT + H + GAP) + TITLE_HEIGHT
    return canvas[top:top + H, c * (W + GAP):c * (W + GAP) + W]


def expected_labels():
    """Each record's clusters on the image's pixels, from the geometry (independent of the drawing code)."""
    y, x = np.mgrid[:H, :W]
    return {
        ('backbone.sign', None, 0): (x < 20).astype(int),  # red (R > 128 after BGR -> RGB) -> cluster 1
        ('backbone.heads', 0, 0): (x // 4) // 2,
        ('backbone.heads', 1, 0): (y // 4) // 2,
        ('backbone.fine', None, 0): (y // 4) * (IN_W // 4) + x // 4,  # the parent cell of the stride-2 cell
        ('backbone.fine', None, 1): (x // 4 >= (IN_W // 4) // 2).astype(int),  # -> the coarse half
    }


def test_panels_follow_records(tool, files, tmp_path):
    config, image, img = files
    out = tmp_path / 'vis' / 'map.png'
    result = tool.main([str(config), 'none', str(image), '--alpha', '1', '--out', str(out)])
    assert result.mode == 'feat' and result.input_hw == (IN_H, IN_W)
    got = {(p.record, p.head, p.depth): p for p in result.panels}
    # the coarse record is drawn through the fine record that names it as its parent, not on its own
    assert [(p.record, p.head, p.depth) for p in result.panels] == list(expected_labels())
    for key, labels in expected_labels().items():
        assert (got[key].labels == labels).all(), key
    assert got[('backbone.fine', None, 1)].cluster_source == 'backbone.coarse'
    assert got[('backbone.heads', 0, 0)].grid == (12, 16)

    png = np.asarray(Image.open(out).convert('RGB'))
    assert (png == result.canvas).all() and result.cols == 3  # 6 panels: image + 5, 3 per row
    assert png.shape == (2 * (TITLE_HEIGHT + H) + GAP, 3 * W + 2 * GAP, 3)
    assert (panel_pixels(png, 0, 3) == img).all()
    for i, (key, labels) in enumerate(expected_labels().items(), start=1):
        pix = panel_pixels(png, i, 3).reshape(-1, 3)
        edge = np.zeros(labels.shape, bool)  # boundaries: the right or lower neighbour is in another cluster
        edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
        edge[:-1] |= labels[:-1] != labels[1:]
        assert (pix[edge.reshape(-1)] == 255).all(), key
        inside = pix[~edge.reshape(-1)]
        pairs = {(int(l), tuple(c)) for l, c in zip(labels.reshape(-1)[~edge.reshape(-1)], inside)}
        # one colour per cluster and one cluster per colour, never white
        assert len(pairs) == len({l for l, _ in pairs}) == len({c for _, c in pairs}), key
        assert (255, 255, 255) not in {c for _, c in pairs}
    summary = json.loads(out.with_suffix('.json').read_text())
    assert [p['record'] for p in summary['panels']] == [k[0] for k in expected_labels()]
    assert summary['panels'][1]['num_clusters'] == 8  # 16 stride-4 columns // 2


def test_select_heads_and_errors(tool, files, tmp_path):
    config, image, _ = files
    one = tool.main([str(config), 'none', str(image), '--select', 'heads', '--heads', '-1', '--out',
                     str(tmp_path / 'one.png')])
    assert [(p.record, p.head) for p in one.panels] == [('backbone.heads', 1)]
    # selecting only the parent draws it on its own grid (stride 4)
    coarse = tool.main([str(config), 'none', str(image), '--select', 'coarse', '--out', str(tmp_path / 'c.png')])
    y, x = np.mgrid[:H, :W]
    assert len(coarse.panels) == 1 and (coarse.panels[0].labels == (x // 4 >= 8)).all()
    with pytest.raises(ValueError, match='backbone.sign'):  # names what the model recorded
        tool.main([str(config), 'none', str(image), '--select', 'nothing', '--out', str(tmp_path / 'x.png')])
    with pytest.raises(ValueError, match='2 heads'):
        tool.main([str(config), 'none', str(image), '--select', 'heads', '--heads', '2', '--out',
                   str(tmp_path / 'x.png')])


def test_ground_truth_scores(tool, files, tmp_path):
    """The sign record splits at x = 20 exactly: UE 0, ASA 1 against a GT split there; against a GT split at
    x = 25 the five columns 20..24 leak."""
    config, image, _ = files
    gt = np.zeros((H, W), np.uint8)
    gt[:, 25:] = 2
    Image.fromarray(gt).save(tmp_path / 'gt.png')
    result = tool.main([str(config), 'none', str(image), '--select', 'sign', '--gt', str(tmp_path / 'gt.png'),
                        '--cols', '3', '--out', str(tmp_path / 'gt_map.png')])
    (panel, ) = result.panels
    assert panel.scores['asa'] == pytest.approx(1 - 5 * H / (H * W))
    # only the right cluster straddles: min(|S∩G0|, |S - G0|) + min(|S∩G2|, |S - G2|) = 5 H + 5 H pixels
    assert panel.scores['ue'] == pytest.approx(10 * H / (H * W))
    assert result.canvas.shape[1] == 3 * W + 2 * GAP  # image, clusters, leakage


def test_checkpoint_loading(tool, files, tmp_path):
    config, image, _ = files
    from mmcluster.visualization.inference import build_model, load_config
    model = build_model(load_config(config), seed=5)
    torch.save(dict(state_dict=model.state_dict(), meta={}), tmp_path / 'model.pth')
    torch.save(model.backbone.state_dict(), tmp_path / 'backbone.pth')  # a converted backbone checkpoint
    for ckpt in ('model.pth', 'backbone.pth'):
        tool.main([str(config), str(tmp_path / ckpt), str(image), '--select', 'sign', '--out',
                   str(tmp_path / 'ok.png')])
    torch.save({'state_dict': {'backbone.conv.weight': torch.zeros(3, 3, 3, 3)}}, tmp_path / 'bad.pth')
    with pytest.raises(ValueError, match='does not fit'):
        tool.main([str(config), str(tmp_path / 'bad.pth'), str(image), '--out', str(tmp_path / 'x.png')])
    torch.save({'state_dict': {'backbone.conv.weight': torch.zeros(3, 3, 1, 1)}}, tmp_path / 'part.pth')
    with pytest.raises(ValueError, match='missing'):
        tool.main([str(config), str(tmp_path / 'part.pth'), str(image), '--out', str(tmp_path / 'x.png')])
    tool.main([str(config), str(tmp_path / 'part.pth'), str(image), '--allow-missing', '--out',
               str(tmp_path / 'x.png')])


def test_parent_errors():
    """A parent that recorded nothing, or whose token count is not the child's cluster count, is an error."""
    from mmcluster.models.utils.cluster_record import ClusterRecord
    child = ClusterRecord('a', 'hard', torch.zeros(1, 4, dtype=torch.long), (2, 2), 3, parent='b')
    with pytest.raises(ValueError, match="parent 'b'"):
        record_panels([child], (2, 2))
    parent = ClusterRecord('b', 'hard', torch.zeros(1, 4, dtype=torch.long), (2, 2), 1)
    with pytest.raises(ValueError, match='3 clusters but its parent'):
        record_panels([child, parent], (2, 2))
    with pytest.raises(ValueError, match='differ in size'):
        draw_cluster_map(np.zeros((3, 3, 3), np.uint8), [parent], gt=np.zeros((2, 2)))
