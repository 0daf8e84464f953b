"""tools/model_converters/hcformer2mmcluster.py on checkpoints laid out exactly as the official HCFormer code
(DensoITLab/HCFormer) lays them out.

* Key layouts: ``tests/data/fixtures/hcformer_official_keys.json.gz`` lists every key and shape of the official
  models (built from the official classes by ``tools/parity/make_hcformer_fixture.py``): HCFormer+ Swin-L COCO
  panoptic -- the released checkpoint --, HCFormer and HCFormer+ R50. Each converted list must equal the
  state dict of the model our config builds: same keys, same shapes (models built on the meta device).
* A real file end to end: the tiny official HCFormer+ (HCSwin) of ``hcformer_parity.pt`` saved the way
  detectron2 saves it, converted by the command line into a strict load, and the model's outputs compared
  with the official code's (float64).
"""
import gzip
import json
import pickle
from collections import OrderedDict

import pytest
import torch
from conftest import REPO, load_tool
from e2e import published

pytest.importorskip('mmdet.models')

FIXTURES = REPO / 'tests' / 'data' / 'fixtures'
CONFIGS = REPO / 'configs' / 'hcformer'
TOOL = 'tools/model_converters/hcformer2mmcluster.py'
# our config for each official model of the key-list fixture
OFFICIAL_MODELS = {
    'hcformerplus_swin-l_coco-panoptic': 'hcformerplus_swin-l-p4-w12-384-in21k_16xb1-lsj-200e_coco-panoptic.py',
    'hcformer_r50_coco-panoptic': 'hcformer_r50_8xb2-lsj-50e_coco-panoptic.py',
    'hcformerplus_r50_coco-panoptic': 'hcformerplus_r50_8xb2-lsj-100e_coco-panoptic.py',
}


@pytest.fixture(scope='module')
def conv():
    return load_tool(TOOL)


def find_config(name):
    hits = sorted(CONFIGS.rglob(name))
    if not hits:
        pytest.skip(f'config {name} not present')
    return hits[0]


@pytest.mark.parametrize('official', sorted(OFFICIAL_MODELS))
def test_official_key_layout_converts_exactly(conv, official):
    from mmcluster.utils.checkpoint import check_state_dict
    layout = json.loads(gzip.decompress((FIXTURES / 'hcformer_official_keys.json.gz').read_bytes()))['models'][official]
    state = OrderedDict((k, torch.empty(shape, device='meta')) for k, shape in layout.items())
    converted, info = conv.convert(state)
    model = conv.build_model(str(find_config(OFFICIAL_MODELS[official])), meta=True)
    report = check_state_dict(converted, model)
    assert report.exact, str(report)
    # the parameter count of published.yml is the one of this official key list
    counted = sum(torch.Size(shape).numel() for k, shape in layout.items() if k != 'criterion.empty_weight'
                  and not k.endswith(('running_mean', 'running_var', 'relative_position_index')))
    official_params = published('hcformer')['official_params']
    assert counted == official_params[official] == sum(p.numel() for p in model.parameters())
    assert info['dropped'] == ['criterion.empty_weight'] and info['level'] == 3
    assert info['backbone'] == ('swin' if 'swin' in official else 'resnet')
    assert info['with_encoder'] == official.startswith('hcformerplus')
    assert info['num_queries'] == (200 if 'swin-l' in official else 100)
    if info['backbone'] == 'resnet':  # every FrozenBN gets mmdet's counter, nothing else is invented
        assert info['added'] and all(k.endswith('num_batches_tracked') for k in info['added'])
        assert len(converted) == len(layout) - 1 + len(info['added'])
    else:
        assert not info['added'] and len(converted) == len(layout) - 1


def test_patch_merging_reorder_is_a_permutation(conv):
    """Official concat order [(0,0), (1,0), (0,1), (1,1)] x C -> Unfold's C x [(0,0), (0,1), (1,0), (1,1)]."""
    c = 3
    official = [f'{pos}{ch}' for pos in ('00', '10', '01', '11') for ch in range(c)]  # feature of each input column
    unfold = [f'{pos}{ch}' for ch in range(c) for pos in ('00', '01', '10', '11')]
    w = torch.arange(4 * c, dtype=torch.float64).repeat(2, 1)  # w[:, j] = j: records where column j goes
    moved = conv.patch_merging_to_unfold(w)
    assert [official[int(j)] for j in moved[0]] == unfold
    assert [official[int(j)] for j in conv.patch_merging_to_unfold(torch.arange(4.0 * c))] == unfold


def tiny_config(tmp_path):
    """Our model of the tiny official HCFormer+ in the parity fixture (same sizes, official key naming)."""
    dec_attn = dict(embed_dims=16, num_heads=2, dropout=0.0, batch_first=True)
    cfg = f'''
default_scope = 'mmdet'
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)
model = dict(
    type='Mask2Former',
    data_preprocessor=dict(type='DetDataPreprocessor'),
    backbone=dict(type='HCSwinTransformer', pretrain_img_size=384, embed_dims=3, depths=(2, 2, 2, 1),
                  num_heads=(1, 1, 2, 2), window_size=2, mlp_ratio=4, drop_path_rate=0.3,
                  out_indices=(0, 1, 2, 3)),
    neck=dict(type='HCFormerNeck', in_channels=[3, 6, 12, 24], level=3, embed_dims=8,
              coarse_inputs='patch_merging',
              encoder=dict(num_layers=1, layer_cfg=dict(
                  self_attn_cfg=dict(embed_dims=32, num_heads=4, dropout=0.1, batch_first=True),
                  ffn_cfg=dict(embed_dims=32, feedforward_channels=32, num_fcs=2, ffn_drop=0.1,
                               act_cfg=dict(type='ReLU', inplace=True))))),
    panoptic_head=dict(
        type='HCFormerHead', in_channels=32, feat_channels=16, out_channels=16, num_things_classes=2,
        num_stuff_classes=1, num_queries=4, positional_encoding=dict(num_feats=8, normalize=True),
        transformer_decoder=dict(return_intermediate=True, num_layers=2, layer_cfg=dict(
            self_attn_cfg={dec_attn!r}, cross_attn_cfg={dec_attn!r},
            ffn_cfg=dict(embed_dims=16, feedforward_channels=16, num_fcs=2, ffn_drop=0.0,
                         act_cfg=dict(type='ReLU', inplace=True)))),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0, reduction='mean',
                      class_weight=[1.0, 1.0, 1.0, 0.1])),
    panoptic_fusion_head=dict(type='MaskFormerFusionHead', num_things_classes=2, num_stuff_classes=1),
    test_cfg=dict(panoptic_on=True, semantic_on=False, instance_on=False, max_per_image=4, iou_thr=0.8,
                  filter_low_score=True))
'''
    path = tmp_path / 'tiny_hcformerplus_hcswin.py'
    path.write_text(cfg)
    return path


def test_official_checkpoint_file_end_to_end(conv, tmp_path, capsys):
    """detectron2-style file -> command line (in process) -> strict load -> the official outputs (float64)."""
    fixture = torch.load(FIXTURES / 'hcformer_parity.pt', weights_only=True)['model']
    src, dst = tmp_path / 'model_final.pth', tmp_path / 'converted.pth'
    torch.save({'model': fixture['state_dict'], 'iteration': 1475000}, src)  # DetectionCheckpointer layout
    config = tiny_config(tmp_path)
    code = conv.main([str(src), str(dst), '--config', str(config)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert 'missing keys (0)' in out and 'unexpected keys (0)' in out and 'shape mismatches (0)' in out
    assert "dropped ['criterion.empty_weight']" in out and 'loaded strictly' in out

    from mmcluster.utils.checkpoint import load_checkpoint_safely
    saved = load_checkpoint_safely(dst)
    assert saved['meta']['backbone'] == 'swin' and saved['meta']['level'] == 3
    model = conv.build_model(str(config))
    model.load_state_dict(saved['state_dict'], strict=True)
    model.double().eval()
    with torch.no_grad():
        x = model.extract_feat(fixture['image'].double())
        cls, masks = model.panoptic_head(x, decode='last')
    tol = dict(rtol=1e-9, atol=1e-11)
    for ours, official in zip(x.assigns, fixture['assigns']):
        torch.testing.assert_close(ours, official, **tol)
    torch.testing.assert_close(x.feat, fixture['res5'], **tol)
    torch.testing.assert_close(cls[-1], fixture['pred_logits'], **tol)
    torch.testing.assert_close(masks[-1], fixture['pred_masks'], **tol)
    for i, (logits, mask) in enumerate(zip(fixture['aux_logits'], fixture['aux_masks'])):
        torch.testing.assert_close(cls[i], logits, **tol)
        torch.testing.assert_close(masks[i], mask, **tol)  # stride 32: not decoded in eval (as official)


def test_unknown_keys_are_errors_not_dropped(conv):
    base = {'backbone.stem.0.weight': torch.zeros(64, 3, 7, 7)}
    for key in ('backbone.layer1.0.se.fc.weight', 'sem_seg_head.pixel_decoder.x.weight', 'backbone.aux.norm.weight',
                'backbone.clustering_layers.0.inv_temp'):
        with pytest.raises(conv.ConversionError, match='no mapping'):
            conv.convert(dict(base, **{key: torch.zeros(1)}))
    with pytest.raises(conv.ConversionError, match='not an official HCFormer checkpoint'):
        conv.convert({'state_dict.x': torch.zeros(1)})
    with pytest.raises(ValueError, match="'panoptic_head', 'decode_head'"):
        conv.convert(base, head='mask_head')
    # old decoder name, read as the official loader reads it; the mmseg head prefix
    out, _ = conv.convert(dict(base, **{'sem_seg_head.predictor.static_query.weight': torch.zeros(4, 8)}),
                          head='decode_head')
    assert 'decode_head.query_feat.weight' in out


class Payload:
    def __reduce__(self):
        return (print, ('PAYLOAD-RAN', ))


def test_pickled_code_is_refused(conv, tmp_path, capsys):
    src = tmp_path / 'evil.pth'
    with open(src, 'wb') as f:
        pickle.dump({'model': {'backbone.stem.0.weight': Payload()}}, f, protocol=2)
    code = conv.main([str(src), str(tmp_path / 'out.pth')])
    out, err = capsys.readouterr()
    assert code == 2 and 'PAYLOAD-RAN' not in out + err and not (tmp_path / 'out.pth').exists()
    assert "refused to unpickle the global 'print'" in out
