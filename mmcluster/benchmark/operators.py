"""Each clustering operation against the dense operation it replaces, over input resolutions.

One :class:`OperatorPair` per clustering operation; its ``build(h, w)`` returns the forms to compare at an
**image** resolution ``h x w`` (each form runs on the feature map of its stride, with the channels of the
full-size model it comes from, batch 1, forward without gradients):

* ``clustr_attention`` (stride 4, ClusTR-T/S stage 1: 64 channels, 1 head, reduction ratios 64 and 16):
  :class:`~mmcluster.models.layers.ClusteringAttention` vs full multi-head attention (mmpretrain's
  ``MultiheadAttention``, which calls ``scaled_dot_product_attention``).
* ``coc_mixer`` (stride 4, CoC-Tiny stage 1: 32 channels, 4 heads x 24, 2 x 2 centres in 8 x 8 regions):
  :class:`~mmcluster.models.layers.ContextClusterLayer` vs PoolFormer's pooling mixer (mmpretrain ``Pooling``)
  vs full attention (mmpretrain ``MultiheadAttention``, 4 heads) on the same tokens.
* ``hcformer_decoding`` (R50 features at strides 4-32, 100 queries of 256 channels): HCFormer's clustering
  (three :class:`~mmcluster.models.layers.HCClustering`) + the mask product at stride 32 + cluster-based decoding
  (:func:`~mmcluster.models.layers.hc_decode.hc_decode_hierarchy`) to stride 4, vs mmdet's FPN ``PixelDecoder``
  (MaskFormer's) + the per-pixel mask product at stride 4, vs bilinear upsampling of the stride-32 masks.
* ``kmax_cross_attention`` (stride 8, 128 queries of 256 channels, COCO's 133 + 1 classes): one kMaX decoder
  layer (:class:`~mmcluster.models.layers.KMeansCrossAttentionLayer`: k-means cross-attention, self-attention,
  FFN, on kMaX's 512-channel stride-8 features) vs one Mask2Former decoder layer (mmdet's
  ``Mask2FormerTransformerDecoderLayer``: masked cross-attention, self-attention, FFN, 256 channels, 8 heads;
  the attention mask keeps a random half of the pixels, as a thresholded previous prediction would).

Sizes grow until a form would exceed the time or memory limit: the next size's cost is predicted from the
previous size with the form's asymptotic growth (:attr:`OperatorPair.growth`: 2 for all-pairs forms, full
attention and DPC-kNN, 1 otherwise; a power law in the number of pixels) and a form predicted over a limit is not
run but reported as ``skipped: <reason>``. Times are CPU time of the one thread by default
(:func:`~mmcluster.benchmark.measure.default_clock`), so that the load of a shared machine does not decide what
is skipped.
"""
import math
import statistics
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .measure import PeakMemory, timed

Forms = Dict[str, Callable[[], Any]]


@dataclass(frozen=True)
class OperatorPair:
    """A clustering operation (``clustering``: the form's name) and the dense forms it replaces."""
    name: str
    clustering: str
    dense: Tuple[str, ...]
    stride: int
    description: str
    build: Callable[[int, int, torch.device], Forms]
    growth: Tuple[Tuple[str, float], ...] = ()

    def exponent(self, form: str) -> float:
        """Asymptotic growth of the form's cost with the number of pixels (1: linear; 2: all pairs)."""
        return dict(self.growth).get(form, 1.0)


def _grid(h: int, w: int, stride: int) -> Tuple[int, int]:
    return math.ceil(h / stride), math.ceil(w / stride)


def _no_grad(module: nn.Module, *inputs) -> Callable[[], Any]:
    module.eval()

    def call():
        with torch.no_grad():
            return module(*inputs)

    return call


class _TokensAsMap(nn.Module):
    """``[B, C, H, W]`` -> tokens ``[B, HW, C]`` -> ``module`` -> map (an attention mixer on a CoC map)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return self.module(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, c, h, w)


def _attention(dims: int, heads: int) -> nn.Module:
    from mmpretrain.models.utils import MultiheadAttention
    return MultiheadAttention(embed_dims=dims, num_heads=heads)


def build_clustr(h: int, w: int, device: torch.device) -> Forms:
    from mmcluster.models.backbones.clustr import ARCH_SETTINGS
    from mmcluster.models.layers import ClusteringAttention
    tiny = ARCH_SETTINGS['tiny']
    dims, heads, ratios = tiny['embed_dims'][0], tiny['num_heads'][0], tiny['ratios'][0]
    gh, gw = _grid(h, w, 4)
    x = torch.randn(1, gh * gw, dims, device=device)
    clus = ClusteringAttention(dims, heads, ratios).to(device).eval()
    full = _attention(dims, heads).to(device)

    def clustering():
        with torch.no_grad():
            return clus(x, (gh, gw))

    return {'clustering attention': clustering, 'full attention': _no_grad(full, x)}


def build_coc(h: int, w: int, device: torch.device) -> Forms:
    from mmpretrain.models.backbones.poolformer import Pooling

    from mmcluster.models.backbones.context_cluster import ContextCluster
    from mmcluster.models.layers import ContextClusterLayer
    tiny = ContextCluster.arch_settings['tiny']
    dims, heads, head_dim = tiny['embed_dims'][0], tiny['heads'][0], tiny['head_dim'][0]
    x = torch.randn(1, dims, *_grid(h, w, 4), device=device)
    coc = ContextClusterLayer(dims, heads, head_dim, tiny['proposal'][0], tiny['fold'][0]).to(device)
    return {'context cluster': _no_grad(coc, x), 'pooling mixer': _no_grad(Pooling(3).to(device), x),
            'attention mixer': _no_grad(_TokensAsMap(_attention(dims, heads)).to(device), x)}


R50_CHANNELS = (256, 512, 1024, 2048)
QUERIES, QUERY_DIMS = 100, 256


class _HCDecoding(nn.Module):
    """HCFormer's path from backbone features to stride-4 masks: clustering between consecutive levels, masks
    at stride 32 (query x projected top feature), decoding through the assignments."""

    def __init__(self) -> None:
        super().__init__()
        from mmcluster.models.layers import HCClustering
        self.clusterings = nn.ModuleList(HCClustering(f, c) for f, c in zip(R50_CHANNELS[:-1], R50_CHANNELS[1:]))
        self.proj = nn.Conv2d(R50_CHANNELS[-1], QUERY_DIMS, 1)

    def forward(self, feats: Sequence[torch.Tensor], queries: torch.Tensor) -> torch.Tensor:
        from mmcluster.models.layers.hc_decode import hc_decode_hierarchy
        assigns = [clus(fine, coarse) for clus, fine, coarse in zip(self.clusterings, feats[:-1], feats[1:])]
        masks = torch.einsum('bqc,bchw->bqhw', queries, self.proj(feats[-1]))
        return hc_decode_hierarchy(masks, assigns[::-1])


class _PixelDecoding(nn.Module):
    """mmdet's FPN pixel decoder (MaskFormer) to a stride-4 mask feature, then the per-pixel mask product."""

    def __init__(self) -> None:
        super().__init__()
        from mmdet.models.layers import PixelDecoder
        self.decoder = PixelDecoder(in_channels=list(R50_CHANNELS), feat_channels=QUERY_DIMS,
                                    out_channels=QUERY_DIMS, norm_cfg=dict(type='GN', num_groups=32),
                                    act_cfg=dict(type='ReLU'))

    def forward(self, feats: Sequence[torch.Tensor], queries: torch.Tensor) -> torch.Tensor:
        mask_feature, _ = self.decoder(list(feats), None)
        return torch.einsum('bqc,bchw->bqhw', queries, mask_feature)


class _Bilinear(nn.Module):
    """Masks at stride 32, bilinearly upsampled to stride 4 (no pixel decoder)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(R50_CHANNELS[-1], QUERY_DIMS, 1)

    def forward(self, feats: Sequence[torch.Tensor], queries: torch.Tensor) -> torch.Tensor:
        masks = torch.einsum('bqc,bchw->bqhw', queries, self.proj(feats[-1]))
        return F.interpolate(masks, size=feats[0].shape[-2:], mode='bilinear', align_corners=False)


def _pyramid(h: int, w: int, device: torch.device) -> List[torch.Tensor]:
    """R50-like features at strides 4, 8, 16, 32 (each level half the previous, rounded up, as HCFormer needs)."""
    size = _grid(h, w, 4)
    feats = []
    for c in R50_CHANNELS:
        feats.append(torch.randn(1, c, *size, device=device))
        size = ((size[0] + 1) // 2, (size[1] + 1) // 2)
    return feats


def build_hcformer(h: int, w: int, device: torch.device) -> Forms:
    feats = _pyramid(h, w, device)
    queries = torch.randn(1, QUERIES, QUERY_DIMS, device=device)
    return {'HC decoding': _no_grad(_HCDecoding().to(device), feats, queries),
            'FPN pixel decoder': _no_grad(_PixelDecoding().to(device), feats, queries),
            'bilinear upsampling': _no_grad(_Bilinear().to(device), feats, queries)}


KMAX_QUERIES, KMAX_CLASSES = 128, 134


class _MaskedCrossAttentionLayer(nn.Module):
    """mmdet's Mask2Former decoder layer over a flattened stride-8 map, with a fixed attention mask."""

    def __init__(self, gh: int, gw: int, device: torch.device) -> None:
        super().__init__()
        from mmdet.models.layers.transformer import Mask2FormerTransformerDecoderLayer
        self.layer = Mask2FormerTransformerDecoderLayer(
            self_attn_cfg=dict(embed_dims=QUERY_DIMS, num_heads=8, dropout=0.0, batch_first=True),
            cross_attn_cfg=dict(embed_dims=QUERY_DIMS, num_heads=8, dropout=0.0, batch_first=True),
            ffn_cfg=dict(embed_dims=QUERY_DIMS, feedforward_channels=2048, num_fcs=2, ffn_drop=0.0,
                         act_cfg=dict(type='ReLU', inplace=True)))
        g = torch.Generator().manual_seed(0)
        n = gh * gw
        # True = not attended (mmcv / nn.MultiheadAttention); one mask per head, as Mask2Former repeats it
        self.register_buffer('mask', (torch.rand(8, KMAX_QUERIES, n, generator=g) > 0.5).to(device))

    def forward(self, pixels: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        return self.layer(query=queries, key=pixels, value=pixels, cross_attn_mask=self.mask)


def build_kmax(h: int, w: int, device: torch.device) -> Forms:
    from mmcluster.models.layers import KMeansCrossAttentionLayer
    gh, gw = _grid(h, w, 8)
    kmax = KMeansCrossAttentionLayer(512, KMAX_CLASSES, in_channels_query=QUERY_DIMS).to(device)
    pixel_feature = torch.randn(1, 512, gh, gw, device=device)
    centres = torch.randn(1, QUERY_DIMS, KMAX_QUERIES, device=device)
    masked = _MaskedCrossAttentionLayer(gh, gw, device).to(device)
    pixels = torch.randn(1, gh * gw, QUERY_DIMS, device=device)
    queries = torch.randn(1, KMAX_QUERIES, QUERY_DIMS, device=device)
    return {'k-means cross-attention': _no_grad(kmax, pixel_feature, centres),
            'masked cross-attention': _no_grad(masked, pixels, queries)}


PAIRS: Tuple[OperatorPair, ...] = (
    OperatorPair('clustr_attention', 'clustering attention', ('full attention', ), 4,
                 'ClusTR-T stage 1 (64 ch, 1 head, ratios 64/16) vs full attention, tokens at stride 4', build_clustr,
                 # DPC-kNN compares every token with every other (chunked), like attention
                 (('clustering attention', 2.0), ('full attention', 2.0))),
    OperatorPair('coc_mixer', 'context cluster', ('pooling mixer', 'attention mixer'), 4,
                 'CoC-Tiny stage 1 token mixer (32 ch, 4 heads x 24, 2x2 centres, 8x8 regions) vs pooling / '
                 'attention mixers, stride 4', build_coc, (('attention mixer', 2.0), )),
    OperatorPair('hcformer_decoding', 'HC decoding', ('FPN pixel decoder', 'bilinear upsampling'), 4,
                 'R50 features -> 100 stride-4 masks: HCFormer clustering + decoding vs mmdet FPN pixel decoder + '
                 'mask product vs bilinear upsampling', build_hcformer),
    OperatorPair('kmax_cross_attention', 'k-means cross-attention', ('masked cross-attention', ), 8,
                 'one decoder layer at stride 8, 128 queries: kMaX (512-ch pixels) vs Mask2Former (256 ch, 8 heads)',
                 build_kmax),
)
PAIR_NAMES = tuple(p.name for p in PAIRS)


def _predict(history: List[Tuple[int, float]], pixels: int, exponent: float) -> Optional[float]:
    """The cost at ``pixels`` from the last measurement and the form's growth ``exponent`` (a power law)."""
    points = [(n, v) for n, v in history if v is not None and v > 0]
    if not points:
        return None
    n1, v1 = points[-1]
    return v1 * (pixels / n1) ** exponent


def measure_operators(sizes: Sequence[Tuple[int, int]], *, pairs: Sequence[str] = PAIR_NAMES, device: str = 'cpu',
                      rounds: int = 3, max_seconds: float = 30.0, max_mib: float = 8192.0,
                      clock: Optional[str] = None, log: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """Time (median over ``rounds`` interleaved rounds after one warm-up) and extra peak memory of every form of
    every pair at every image size; a form predicted over ``max_seconds`` per call or ``max_mib`` is skipped.

    Returns:
        Rows ``{op, form, is_clustering, stride, height, width, tokens, time_ms, mem_mib, ratio_time,
        ratio_mem, status}``; ``ratio_*`` = the form's cost / the clustering form's at the same size.
    """
    from .measure import check_device, default_clock
    dev = check_device(device)
    clock = clock or default_clock(device, torch.get_num_threads())
    unknown = set(pairs) - set(PAIR_NAMES)
    if unknown:
        raise ValueError(f'unknown operator pairs {sorted(unknown)}; choose from {PAIR_NAMES}')
    rows: List[Dict[str, Any]] = []
    for pair in (p for p in PAIRS if p.name in pairs):
        history: Dict[str, Dict[str, List[Tuple[int, float]]]] = {}
        for h, w in sorted(sizes, key=lambda s: s[0] * s[1]):
            gh, gw = _grid(h, w, pair.stride)
            log(f'  {pair.name} at {h}x{w} ({gh}x{gw} tokens) ...')
            torch.manual_seed(0)
            size_rows: Dict[str, Dict[str, Any]] = {}
            try:
                forms = pair.build(h, w, dev)
            except Exception as exc:  # e.g. out of memory for the inputs themselves
                forms = {}
                for name in (pair.clustering, *pair.dense):
                    size_rows[name] = dict(status=f'failed: {type(exc).__name__}: {exc}'.splitlines()[0][:200])
            runnable = {}
            for name, fn in forms.items():
                past = history.setdefault(name, dict(time=[], mem=[]))
                growth = pair.exponent(name)
                t_pred, m_pred = _predict(past['time'], h * w, growth), _predict(past['mem'], h * w, growth)
                if t_pred is not None and t_pred > max_seconds:
                    size_rows[name] = dict(status=f'skipped: predicted {t_pred:.0f} s per call > {max_seconds:.0f} s')
                elif m_pred is not None and m_pred > max_mib:
                    size_rows[name] = dict(status=f'skipped: predicted {m_pred:.0f} MiB > {max_mib:.0f} MiB')
                else:
                    runnable[name] = fn
            times: Dict[str, List[float]] = {name: [] for name in runnable}
            mems: Dict[str, Optional[float]] = {}
            for name, fn in list(runnable.items()):
                try:
                    with PeakMemory(dev) as mem:  # the warm-up call also gives the extra peak memory
                        fn()
                    mems[name] = mem.value
                except Exception as exc:
                    size_rows[name] = dict(status=f'failed: {type(exc).__name__}: {exc}'.splitlines()[0][:200])
                    del runnable[name]
            for _ in range(rounds):
                for name, fn in runnable.items():
                    times[name].append(timed(fn, dev, clock))
            for name in runnable:
                t = statistics.median(times[name])
                size_rows[name] = dict(time_ms=1e3 * t, mem_mib=mems.get(name), status='ok')
                history[name]['time'].append((h * w, t))
                history[name]['mem'].append((h * w, mems.get(name)))
            del forms, runnable
            ref = size_rows.get(pair.clustering, {})
            for name in (pair.clustering, *pair.dense):
                row = dict(op=pair.name, form=name, is_clustering=name == pair.clustering, stride=pair.stride,
                           height=h, width=w, tokens=gh * gw, time_ms=None, mem_mib=None, status='not run',
                           clock=clock)
                row.update(size_rows.get(name, {}))
                for key in ('time_ms', 'mem_mib'):
                    ok = isinstance(row[key], float) and isinstance(ref.get(key), float) and ref[key] > 0
                    row[f'ratio_{key.split("_")[0]}'] = row[key] / ref[key] if ok else None
                rows.append(row)
                shown = row['status'] if row['status'] != 'ok' else \
                    f'{row["time_ms"]:.1f} ms, {row["mem_mib"] if row["mem_mib"] is not None else float("nan"):.0f} MiB'
                log(f'    {name}: {shown}')
    return rows
