"""Parity fixture for Context Clusters from the official code (run by hand, never at test time).

Needs:

* the official repository ma-xu/Context-Cluster as a git directory, e.g. the mirror the ``fetch`` tool makes
  (``/work/.mirror/ma-xu+Context-Cluster/repo``) or a clone. Two commits are used:
  ``3ccb0b6`` ("fix bug mask.sum to sim.sum", 2023-05-31; the aggregation of paper Eq. 1, identical model
  file at HEAD ``be9a03b``) and ``9833996`` (2023-03-30, the last one with the ``1 + sum a`` denominator);
* timm 0.6.13 and einops in a scratch folder (never in .venv; the model file imports
  ``timm.models.layers.helpers``, gone in timm 0.9):
  ``.venv/bin/pip install --target /tmp/scratch-coc timm==0.6.13 einops --no-deps``.

Usage::

    .venv/bin/python tools/parity/make_coc_fixture.py --repo /work/.mirror/ma-xu+Context-Cluster/repo \\
        --scratch /tmp/scratch-coc --out tests/data/fixtures

Writes ``coc_official.pt`` (about 100 KB): a small official ``ContextCluster`` with ``fork_feat=True``
(layers 1/1/1/1, dims 8/12/16/16, MLP ratio 2, heads 2, head_dim 4, ``fold_w = fold_h = [2, 2, 1, 1]``,
``proposal_w = [3, 2, 2, 2]``, ``proposal_h = [2, 2, 2, 2]``: a non-square proposal, overlapping adaptive-pool
bins in stages 1-3, non-square maps) run in float64, every parameter replaced by a seeded random value
(LayerScale near 1, so the token mixers matter), with:

* ``input``: ``[1, 3, 48, 64]``, stored as float16 (exact in float64, the dtype the model ran in);
* ``state_dict``: the official keys (the layout of the current code), float16 values (exact in float64; the
  model ran on their float64 copies);
* ``outputs_sim`` / ``outputs_mask``: the four stage outputs (``norm0/2/4/6``) of the official model at
  ``3ccb0b6`` and at ``9833996`` with the same weights;
* ``param_counts``: parameters of the official ``coc_{tiny,tiny2,tiny_plain,small,medium}`` classifiers;
  ``tiny_keys``: every state-dict key of the official ``coc_tiny`` classifier with its shape;
* ``official``: the constructor arguments used, ``commits``: the two commits.
"""
import argparse
import os
import subprocess
import sys
import tempfile
from collections import OrderedDict

import torch

COMMITS = {'sim': '3ccb0b6768236c14ab8e4ec3df2f215b46920cbf', 'mask': '9833996'}
OFFICIAL_ARGS = dict(layers=[1, 1, 1, 1], embed_dims=[8, 12, 16, 16], mlp_ratios=[2, 2, 2, 2],
                     downsamples=[True] * 4, down_patch_size=3, down_pad=1, proposal_w=[3, 2, 2, 2],
                     proposal_h=[2, 2, 2, 2], fold_w=[2, 2, 1, 1], fold_h=[2, 2, 1, 1], heads=[2, 2, 2, 2],
                     head_dim=[4, 4, 4, 4], fork_feat=True)
INPUT_SHAPE = (1, 3, 48, 64)


def load_official(repo: str, commit: str, workdir: str):
    """Import ``models/context_cluster.py`` of ``commit`` as a fresh module."""
    src = subprocess.run(['git', '--git-dir', repo, 'show', f'{commit}:models/context_cluster.py'],
                         check=True, capture_output=True, text=True).stdout
    path = os.path.join(workdir, f'official_coc_{commit[:7]}.py')
    with open(path, 'w') as f:
        f.write(src)
    import importlib.util
    spec = importlib.util.spec_from_file_location(f'official_coc_{commit[:7]}', path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # timm's register_model looks the module up
    spec.loader.exec_module(module)
    return module


def randomise(model: torch.nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            if name.endswith(('layer_scale_1', 'layer_scale_2')):
                p.copy_(1.0 + 0.2 * noise)
            elif name.endswith('sim_alpha'):
                p.copy_(1.5 + 0.3 * noise)
            elif name.endswith('sim_beta'):
                p.copy_(-0.2 + 0.3 * noise)
            elif p.dim() == 1 and 'norm' in name and name.endswith('weight'):
                p.copy_(1.0 + 0.2 * noise)
            elif p.dim() == 1:
                p.copy_(0.1 * noise)
            else:
                fan_in = p[0].numel()
                p.copy_(noise / fan_in ** 0.5)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repo', required=True, help="git directory of ma-xu/Context-Cluster (a clone's .git)")
    parser.add_argument('--scratch', required=True, help='folder with timm 0.6.13 and einops')
    parser.add_argument('--out', default='tests/data/fixtures')
    args = parser.parse_args(argv)
    sys.path.insert(0, args.scratch)
    # the model file registers into mmdet 2.x / mmseg 0.x when importable; keep the OpenMMLab 2.x ones away
    for name in ('mmseg', 'mmdet'):
        sys.modules[name] = None  # type: ignore[assignment]
    torch.manual_seed(0)
    x = torch.randn(INPUT_SHAPE, generator=torch.Generator().manual_seed(1)).half()  # exact in float64
    outputs, state_dict = {}, None
    with tempfile.TemporaryDirectory() as tmp:
        for norm_by, commit in COMMITS.items():
            official = load_official(args.repo, commit, tmp)
            model = official.ContextCluster(norm_layer=official.GroupNorm, **OFFICIAL_ARGS).eval()
            if state_dict is None:  # float16 values (exact in float64): a quarter of the file
                randomise(model)
                state_dict = OrderedDict((k, v.detach().half()) for k, v in model.state_dict().items())
            model.double().load_state_dict(state_dict, strict=True)  # copies into the float64 parameters
            with torch.no_grad():
                outputs[norm_by] = [o.detach().clone() for o in model(x.double())]
            if norm_by == 'sim':  # parameter counts of the official ImageNet classifiers (1000 classes)
                counts = {name: sum(p.numel() for p in getattr(official, f'coc_{name}')().parameters())
                          for name in ('tiny', 'tiny2', 'tiny_plain', 'small', 'medium')}
                tiny_keys = {k: list(v.shape) for k, v in official.coc_tiny().state_dict().items()}
    for a, b in zip(outputs['sim'], outputs['mask']):
        assert not torch.allclose(a, b), 'the two aggregations should differ'
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, 'coc_official.pt')
    official_args = dict(OFFICIAL_ARGS, norm_layer='GroupNorm')
    torch.save(dict(input=x, state_dict=state_dict, outputs_sim=outputs['sim'], outputs_mask=outputs['mask'],
                    official=official_args, commits=COMMITS, param_counts=counts, tiny_keys=tiny_keys), path)
    print(f'parameter counts: {counts}')
    print(f'wrote {path} ({os.path.getsize(path) / 1024:.1f} KB); output shapes '
          f'{[tuple(o.shape) for o in outputs["sim"]]}')


if __name__ == '__main__':
    main()
