"""Produce the ClusterFormer parity fixtures from the released code (run by hand; nothing here runs in tests).

The released code is ClusterFormer/ClusterFormer, file ``mmcls/models/backbones/cluster.py`` at commit
``0c384d2`` (the last pure-PyTorch commit; the next one, 66bcd18, imports ``flash_attn``). It needs
``timm`` 0.6 only (``mmcls`` is optional: without it the ``cluster_tiny`` / ``cluster_small`` classes are not
defined and this script builds ``Cluster`` with their settings). Steps::

    git clone https://github.com/ClusterFormer/ClusterFormer /tmp/ClusterFormer
    mkdir -p /tmp/cf-release
    git -C /tmp/ClusterFormer show 0c384d2:mmcls/models/backbones/cluster.py > /tmp/cf-release/cluster.py
    .venv/bin/pip install --target /tmp/scratch-cf timm==0.6.13 --no-deps     # never into .venv
    PYTHONPATH=/tmp/scratch-cf:/tmp/cf-release .venv/bin/python tools/parity/make_clusterformer_fixture.py

It writes, on the CPU in float64, with small sizes and weights perturbed away from their init (LayerScale
0.3-0.7 instead of 1e-5, so that the mixers are visible in the outputs; ``sim_alpha``/``sim_beta`` moved):

* ``tests/data/fixtures/clusterformer_layer.pt``: one released ``Clustering`` layer (dim 8, 2 heads of 4,
  3x2 centres, 2x3 raw windows, 3 recurrences) on a ``[2, 8, 8, 12]`` input: ``input``, ``state_dict``
  (released keys), ``output``, ``config``;
* ``tests/data/fixtures/clusterformer_backbone.pt``: a small released ``Cluster`` (fork_feat, four stages of
  one block each, 2 recurrences, raw windows 4/2/1/1) on ``[1, 3, 32, 48]``: ``input``, ``state_dict``
  (released keys, with the mmcls classifier prefix ``backbone.`` and a ``head.fc`` of the concatenated 4-stage width), ``outputs`` (the
  four normalised stage maps) and ``logits`` (released neck: concatenated global average pools -> head);
* ``tests/data/fixtures/clusterformer_tiny_keys.json.gz`` (gzipped JSON): key -> shape of the released ``cluster_tiny``
  classifier (``backbone.*`` of the model definition + the ``head.fc`` of its config, in_channels 1440,
  1000 classes) and the parameter counts of the released tiny / small backbones.
"""
import gzip
import json
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / 'tests' / 'data' / 'fixtures'

TINY = dict(layers=[2, 2, 6, 2], embed_dims=[96, 192, 384, 768], mlp_ratios=[8, 8, 4, 4],
            downsamples=[True] * 4, down_patch_size=3, down_pad=1, center_w=[10] * 4, center_h=[10] * 4,
            window_w=[32, 16, 8, 4], window_h=[32, 16, 8, 4], heads=[3, 6, 12, 24], head_dim=[32] * 4,
            fork_feat=True, return_center=False)


def perturb(module: torch.nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for name, p in module.named_parameters():
            if 'layer_scale' in name:
                p.copy_(0.3 + 0.4 * torch.rand(p.shape, generator=gen, dtype=p.dtype))
            elif name.endswith('sim_alpha'):
                p.fill_(1.7)
            elif name.endswith('sim_beta'):
                p.fill_(-0.3)
            elif 'norm' in name and name.endswith('weight'):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
            else:
                p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def main() -> None:
    import cluster as release  # the released cluster.py on PYTHONPATH (see the docstring)

    torch.set_default_dtype(torch.float64)
    OUT.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(0)

    # one layer
    cfg = dict(dim=8, out_dim=8, center_w=3, center_h=2, window_w=2, window_h=3, heads=2, head_dim=4,
               num_clustering=3)
    torch.manual_seed(0)
    layer = release.Clustering(**cfg).double().eval()
    perturb(layer, gen)
    x = torch.randn(2, 8, 8, 12, generator=gen)
    with torch.no_grad():
        y = layer(x)
    torch.save(dict(input=x, state_dict=layer.state_dict(), output=y, config=cfg,
                    source='ClusterFormer/ClusterFormer@0c384d2 mmcls/models/backbones/cluster.py Clustering'),
               OUT / 'clusterformer_layer.pt')

    # a small backbone + the released neck and head
    bcfg = dict(layers=[1, 1, 1, 1], embed_dims=[8, 8, 16, 16], mlp_ratios=[1, 1, 1, 1], downsamples=[True] * 4,
                down_patch_size=3, down_pad=1, center_w=[3] * 4, center_h=[2] * 4, window_w=[4, 2, 1, 1],
                window_h=[4, 2, 1, 1], heads=[2, 2, 2, 2], head_dim=[4] * 4, fork_feat=True,
                return_center=False, num_clustering=2)
    torch.manual_seed(1)
    net = release.Cluster(norm_layer=release.GroupNorm, **bcfg).double().eval()
    perturb(net, gen)
    width = sum(bcfg['embed_dims'])
    head = torch.nn.Linear(width, 5).double()
    perturb(head, gen)
    img = torch.randn(1, 3, 32, 48, generator=gen)
    with torch.no_grad():
        outs = net(img)
        pooled = torch.cat([o.mean(dim=(2, 3)) for o in outs], dim=1)  # the released concatenating GAP neck
        logits = head(pooled)
    sd = {f'backbone.{k}': v for k, v in net.state_dict().items()}
    sd.update({f'head.fc.{k}': v for k, v in head.state_dict().items()})
    bcfg_saved = {k: v for k, v in bcfg.items() if k not in ('downsamples', 'fork_feat', 'return_center')}
    torch.save(dict(input=img, state_dict=sd, outputs=list(outs), logits=logits, config=bcfg_saved,
                    source='ClusterFormer/ClusterFormer@0c384d2 mmcls/models/backbones/cluster.py Cluster'),
               OUT / 'clusterformer_backbone.pt')

    # keys / shapes of the released tiny classifier, and the released parameter counts
    torch.set_default_dtype(torch.float32)
    counts = {}
    keys = None
    for name, layers, iters in (('tiny', [2, 2, 6, 2], 3), ('small', [2, 2, 18, 2], 1)):
        m = release.Cluster(norm_layer=release.GroupNorm, num_clustering=iters, **dict(TINY, layers=layers))
        counts[name] = sum(p.numel() for p in m.parameters())
        if name == 'tiny':
            keys = {f'backbone.{k}': list(v.shape) for k, v in m.state_dict().items()}
            keys['head.fc.weight'] = [1000, sum(TINY['embed_dims'])]
            keys['head.fc.bias'] = [1000]
    with gzip.open(OUT / 'clusterformer_tiny_keys.json.gz', 'wt') as f:
        json.dump(dict(source='ClusterFormer/ClusterFormer@0c384d2: Cluster(**cluster_tiny settings) state_dict + '
                              'the LinearClsHead of configs/cluster/cluster_tiny.py (in_channels 1440)',
                       backbone_params=counts, keys=keys), f, indent=0)
    for f in sorted(OUT.glob('clusterformer_*')):
        print(f, f.stat().st_size, 'bytes')
    print('released backbone parameters:', counts)


if __name__ == '__main__':
    sys.exit(main())
