"""kMaX-DeepLab converter on a checkpoint with exactly the official keys and shapes (from the official module
definitions: ``tests/data/fixtures/kmax_r50_keys.json.gz``, written by ``tools/parity/make_kmax_fixture.py``:
detectron2 ResNet-50 + sem_seg_head), read through the shared safe loader: strict match against the model of
the R50 COCO config (mmdet MaskFormer, mmdet ResNet-50, KMaXHead); missing / unexpected keys reported."""
import gzip
import json

import pytest
import torch
from conftest import REPO, load_tool

from mmcluster.utils.checkpoint import check_state_dict, load_checkpoint_safely, pick_state_dict




@pytest.fixture(scope='module')
def head_state():
    from e2e import build
    from mmengine.config import Config
    pytest.importorskip('mmdet.models')
    with torch.device('meta'):  # shapes only
        model = build(Config.fromfile(str(REPO / 'configs/kmax_deeplab/kmax-deeplab_r50_32xb2-150k_coco-panoptic.py')))
    return model.state_dict()


def _official_layout():
    return json.loads(gzip.decompress((REPO / 'tests/data/fixtures/kmax_r50_keys.json.gz').read_bytes()))


def _official_checkpoint(path, drop=None, extra=None):
    layout = _official_layout()['keys']
    # stride-0 views keep the file small while every tensor has the official shape
    state = {k: torch.zeros(1).expand(s) if s else torch.zeros(()) for k, s in layout.items() if k != drop}
    state.update(extra or {})
    state['pixel_mean'] = torch.zeros(3, 1, 1)  # detectron2 buffers outside the head
    torch.save(dict(model=state, iteration=150000), path)


def test_converter_strict_on_official_layout(tmp_path, head_state, capsys):
    conv = load_tool('tools/model_converters/kmax2mmcluster.py')
    src, dst = tmp_path / 'kmax_r50.pth', tmp_path / 'out.pth'
    _official_checkpoint(src)
    config = REPO / 'configs/kmax_deeplab/kmax-deeplab_r50_32xb2-150k_coco-panoptic.py'
    assert conv.main([str(src), str(dst), '--config', str(config)]) == 0  # the user's path: exit 0 = exact
    out = capsys.readouterr().out
    assert 'pixel_mean' in out and 'missing keys (0)' in out and 'unexpected keys (0)' in out
    state = pick_state_dict(load_checkpoint_safely(dst))
    report = check_state_dict(state, head_state)
    assert report.exact, str(report)


def test_converter_reports_missing_and_unexpected(tmp_path, head_state):
    conv = load_tool('tools/model_converters/kmax2mmcluster.py')
    src = tmp_path / 'broken.pth'
    dropped = 'sem_seg_head.predictor._predcitor._transformer_class_head.conv.weight'
    _official_checkpoint(src, drop=dropped, extra={'sem_seg_head.predictor._bogus.weight': torch.zeros(2)})
    state, _ = conv.convert(pick_state_dict(load_checkpoint_safely(src)))
    report = check_state_dict(state, head_state)
    assert report.missing == ['panoptic_head.transformer_decoder.predictor.transformer_class_head.conv.weight']
    assert report.unexpected == ['panoptic_head.transformer_decoder.bogus.weight']
    assert report.exit_code == 1


def test_backbone_key_mapping():
    conv = load_tool('tools/model_converters/kmax2mmcluster.py')
    assert conv.convert_key('backbone.stem.conv1.weight') == 'backbone.conv1.weight'
    assert conv.convert_key('backbone.stem.conv1.norm.running_var') == 'backbone.bn1.running_var'
    assert conv.convert_key('backbone.res3.0.shortcut.norm.weight') == 'backbone.layer2.0.downsample.1.weight'
    assert conv.convert_key('backbone.res5.2.conv3.weight') == 'backbone.layer4.2.conv3.weight'
    assert conv.convert_key('backbone.stages.2.4.pwconv1.bias') == 'backbone.stages.2.4.pointwise_conv1.bias'


def test_official_convnext_tiny_layout_matches_kmax_convnext():
    """Keys of the official ConvNeXt-T (written by the fixture script from the official module definition)
    convert exactly onto the ``KMaXConvNeXt`` of the ConvNeXt-T config; with ``convnext_out_norms`` onto
    mmpretrain's ConvNeXt (its output norms filled with weight 1 / bias 0)."""
    from mmdet.registry import MODELS
    import mmpretrain.models  # noqa: F401
    from mmengine.config import Config
    conv = load_tool('tools/model_converters/kmax2mmcluster.py')
    layout = _official_layout()['convnext_tiny_backbone_keys']
    official = {k: torch.zeros(1).expand(s) if s else torch.zeros(()) for k, s in layout.items()}
    state, dropped = conv.convert(official)
    cfg = Config.fromfile(str(REPO / 'configs/kmax_deeplab/kmax-deeplab_convnext-t_32xb2-150k_coco-panoptic.py'))
    backbone = MODELS.build(dict(cfg.model.backbone, init_cfg=None))
    assert type(backbone).__name__ == 'KMaXConvNeXt'
    report = check_state_dict(state, {'backbone.' + k: v for k, v in backbone.state_dict().items()})
    assert not dropped and report.exact, str(report)
    state, _ = conv.convert(official, convnext_out_norms=True)
    mmpretrain_convnext = MODELS.build(dict(type='mmpretrain.ConvNeXt', arch='tiny', out_indices=(0, 1, 2, 3),
                                            gap_before_final_norm=False, init_cfg=None))
    report = check_state_dict(state, {'backbone.' + k: v for k, v in mmpretrain_convnext.state_dict().items()})
    assert report.exact, str(report)
    assert torch.equal(state['backbone.norm3.weight'], torch.ones(768))
