"""kMaX-DeepLab pixel decoder and transformer decoder: parity with the official PyTorch modules
(``tests/data/fixtures/kmax_*.pt`` from ``tools/parity/make_kmax_fixture.py``, loaded through the converter),
any input size, relative positions beyond the table, parameter counts of the official R50 COCO model
(``tests/data/published.yml``), and a strict load of the official R50 key layout through the converter."""
import gzip
import json

import pytest
import torch
from conftest import REPO, load_tool
from e2e import nparams, published

from mmcluster.models.layers.kmax_axial_attention import KMaXRelativePositionalEncoding
from mmcluster.models.layers.kmax_semantic_predictor import KMaXSemanticPredictor
from mmcluster.models.layers.kmax_transformer_decoder import KMaXTransformerDecoder
from mmcluster.models.necks.kmax_pixel_decoder import KMaXPixelDecoder

FIXTURES = REPO / 'tests' / 'data' / 'fixtures'


def _converted(fx, official_prefix, our_prefix):
    parity = load_tool('tools/parity/make_kmax_fixture.py')
    conv = load_tool('tools/model_converters/kmax2mmcluster.py')
    official = parity.deterministic_state_dict(parity.unpack_shapes(fx['shapes']))
    assert abs(parity.checksum(official) - fx['checksum']) < 1e-6
    ours, dropped = conv.convert({official_prefix + k: v for k, v in official.items()})
    assert not dropped
    assert all(k.startswith(our_prefix) for k in ours)
    return {k[len(our_prefix):]: v for k, v in ours.items()}


def test_pixel_decoder_parity_with_official():
    fx = torch.load(FIXTURES / 'kmax_pixel_decoder.pt', weights_only=True)
    cfg = fx['config']
    dec = KMaXPixelDecoder(in_channels=cfg['in_channels'], dec_layers=cfg['dec_layers'],
                           dec_channels=cfg['dec_channels'], layer_types=cfg['layer_types']).double().eval()
    dec.load_state_dict(_converted(fx, 'sem_seg_head.pixel_decoder.', 'panoptic_head.pixel_decoder.'), strict=True)
    with torch.no_grad():
        pan, sem, multi = dec(fx['feats'])
    torch.testing.assert_close(pan, fx['panoptic_features'], rtol=1e-9, atol=1e-9)
    for ours, ref in zip(multi, fx['multi_scale_features']):
        torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-9)
    assert sem[0] is fx['feats'][3] and sem[1] is fx['feats'][1] and sem[2] is fx['feats'][0]


def test_transformer_decoder_parity_with_official():
    fx = torch.load(FIXTURES / 'kmax_decoder.pt', weights_only=True)
    cfg = fx['config']
    dec = KMaXTransformerDecoder(cfg['num_classes'], in_channels=cfg['in_channels'], num_queries=cfg['num_queries'],
                                 drop_path_rate=0.0).double().eval()
    dec.load_state_dict(_converted(fx, 'sem_seg_head.predictor.', 'panoptic_head.transformer_decoder.'),
                        strict=True)
    with torch.no_grad():
        out = dec(fx['multi_scale_features'], fx['panoptic_features'])
    torch.testing.assert_close(out['pred_logits'], fx['pred_logits'], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out['pred_masks'], fx['pred_masks'], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(torch.stack([a['pred_logits'] for a in out['aux_outputs']]), fx['aux_pred_logits'],
                               rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out['aux_outputs'][-1]['pred_masks'], fx['aux_pred_masks_last'], rtol=1e-9,
                               atol=1e-9)
    # train mode (batch statistics): the assignments spread over the centres (eval mode: one or two)
    dec.train()
    with torch.no_grad():
        out = dec(fx['multi_scale_features'], fx['panoptic_features'])
    ref = fx['train']
    assert ref['pred_masks'].flatten(2).argmax(1).unique().numel() >= cfg['num_queries'] - 2
    torch.testing.assert_close(out['pred_logits'], ref['pred_logits'], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(out['pred_masks'], ref['pred_masks'], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(torch.stack([a['pred_logits'] for a in out['aux_outputs']]), ref['aux_pred_logits'],
                               rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize('size', [(37, 53), (64, 64)])
def test_pixel_decoder_any_size_and_batch_one(size):
    dec = KMaXPixelDecoder(in_channels=(8, 8, 16, 16), dec_layers=(1, 1, 1, 1), dec_channels=(8, 8, 8, 8)).eval()
    h, w = size
    feats = [torch.randn(1, c, -(-h // s), -(-w // s)) for c, s in zip((8, 8, 16, 16), (4, 8, 16, 32))]
    with torch.no_grad():
        pan, sem, multi = dec(feats)
    assert pan.shape == (1, 32, *feats[0].shape[-2:])
    assert [m.shape[-2:] for m in multi] == [feats[3].shape[-2:], feats[2].shape[-2:], feats[1].shape[-2:]]
    assert torch.isfinite(pan).all()


def test_relative_positions_clip_beyond_the_table():
    rpe = KMaXRelativePositionalEncoding(depth=3, max_span=4)
    table = rpe(9)
    emb = rpe.embeddings.weight
    for q in range(9):
        for k in range(9):
            offset = max(-3, min(3, k - q))  # rows hold offsets -3..3
            assert torch.equal(table[q, k], emb[offset + 3])


def test_bad_pixel_decoder_arguments():
    with pytest.raises(ValueError, match='layer_types'):
        KMaXPixelDecoder(layer_types=('axial', 'conv', 'bottleneck', 'bottleneck'))
    with pytest.raises(ValueError, match='equal lengths'):
        KMaXPixelDecoder(dec_layers=(1, 5, 1))


@pytest.fixture(scope='module')
def r50_modules():
    with torch.device('meta'):  # shapes only: no 50M-parameter initialisation
        pixel_decoder = KMaXPixelDecoder()
        transformer_decoder = KMaXTransformerDecoder(num_classes=133)
        aux = KMaXSemanticPredictor(2048, 512, 256, num_classes=134)
    return pixel_decoder, transformer_decoder, aux


def test_parameter_counts_match_official_r50(r50_modules):
    numbers = published('kmax_deeplab')['params']
    pixel_decoder, transformer_decoder, aux = r50_modules
    assert nparams(pixel_decoder) == numbers['r50_coco_pixel_decoder']
    assert nparams(transformer_decoder) == numbers['r50_coco_transformer_decoder_without_aux_semantic']
    assert nparams(transformer_decoder) + nparams(aux) == numbers['r50_coco_transformer_decoder']


def test_official_r50_key_layout_loads_strictly(r50_modules):
    """The official R50 COCO key/shape layout (from the official module definitions) maps one to one."""
    conv = load_tool('tools/model_converters/kmax2mmcluster.py')
    layout = json.loads(gzip.decompress((FIXTURES / 'kmax_r50_keys.json.gz').read_bytes()))['keys']
    official = {k: torch.zeros(s) for k, s in layout.items() if k.startswith('sem_seg_head.')}
    ours, dropped = conv.convert(official)
    assert not dropped
    pixel_decoder, transformer_decoder, aux = r50_modules
    expected = {}
    for prefix, module in (('panoptic_head.pixel_decoder.', pixel_decoder),
                           ('panoptic_head.transformer_decoder.', transformer_decoder),
                           ('panoptic_head.aux_semantic_head.', aux)):
        expected.update({prefix + k: tuple(v.shape) for k, v in module.state_dict().items()})
    missing = sorted(set(expected) - set(ours))
    unexpected = sorted(set(ours) - set(expected))
    mismatched = [k for k in expected if k in ours and tuple(ours[k].shape) != expected[k]]
    assert (missing, unexpected, mismatched) == ([], [], [])
