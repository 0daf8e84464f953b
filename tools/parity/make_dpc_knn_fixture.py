"""Parity fixture for DPC-kNN: stored outputs of TCFormer's official ``cluster_dpc_knn`` and ``merge_tokens``.

Run by hand, once; the tests only read the stored file (``tests/test_models/test_layers/test_dpc_knn.py``).
The official code is TCFormer (Zeng et al., CVPR 2022), https://github.com/zengwang430521/TCFormer, file
``tcformer_module/tcformer_utils.py`` at commit ``1ea72a871b0932b51cf22334113a53c6a10d1f1a``::

    git clone https://github.com/zengwang430521/TCFormer /tmp/TCFormer
    git -C /tmp/TCFormer checkout 1ea72a871b0932b51cf22334113a53c6a10d1f1a
    python tools/parity/make_dpc_knn_fixture.py --tcformer /tmp/TCFormer \\
        --out tests/data/fixtures/dpc_knn_tcformer.pt

Dependencies: torch only (the fixture was made with the project's torch). ``tcformer_utils.py`` imports
``mmcv.utils.get_logger`` and ``mmcv.runner._load_checkpoint / load_state_dict`` (mmcv 1.x) at the top, for its
checkpoint loader only; ``cluster_dpc_knn`` and ``merge_tokens`` use plain torch. mmcv 1.x does not install
next to the project's mmcv 2.x, so while the official file is imported the script puts empty stand-ins for
those two mmcv 1.x modules into ``sys.modules`` (and removes them afterwards); the official functions run
unmodified. Nothing of mmcluster is imported here, and no code is copied into the repository.

What is stored (float64 throughout, a few tens of KB): for every case the input tokens ``x [B, N, C]``, the
number of clusters and ``k``, the ``token_mask`` of the padded case (True = valid), the official
``idx_cluster [B, N]``, per-token scores ``s [B, N]`` and the official merged tokens with weights ``exp(s)``
(TCFormer's ``CTM`` weights) and with unit weights.

TCFormer adds ``U(0, 1) * 1e-6`` noise to the densities to break ties. Every case is run with several seeds and
must give the same ``idx_cluster`` for all of them (the inputs have no densities or scores within the noise), so
the stored result does not depend on the noise; the script refuses to write a fixture otherwise.
"""
import argparse
import contextlib
import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import torch

OFFICIAL_FILE = 'tcformer_module/tcformer_utils.py'
OFFICIAL_COMMIT = '1ea72a871b0932b51cf22334113a53c6a10d1f1a'
SEEDS = range(8)


@contextlib.contextmanager
def _mmcv1_stand_ins():
    """Empty ``mmcv``, ``mmcv.utils``, ``mmcv.runner`` (mmcv 1.x names) while the official file is imported."""
    names = ('mmcv', 'mmcv.utils', 'mmcv.runner')
    saved = {n: sys.modules.get(n) for n in names}
    stubs = {n: types.ModuleType(n) for n in names}
    stubs['mmcv.utils'].get_logger = None
    stubs['mmcv.runner']._load_checkpoint = None
    stubs['mmcv.runner'].load_state_dict = None
    sys.modules.update(stubs)
    try:
        yield
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def load_official(tcformer: Path):
    path = tcformer / OFFICIAL_FILE
    if not path.is_file():
        raise SystemExit(f'{path} not found: --tcformer must be a TCFormer checkout')
    spec = importlib.util.spec_from_file_location('tcformer_utils_official', path)
    mod = importlib.util.module_from_spec(spec)
    with _mmcv1_stand_ins():
        spec.loader.exec_module(mod)
    return mod


def _commit(tcformer: Path) -> str:
    try:
        return subprocess.run(['git', '-C', str(tcformer), 'rev-parse', 'HEAD'], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'


def make_cases():
    """Small float64 inputs: (name, x, cluster_num, k, token_mask or None)."""
    g = torch.Generator().manual_seed(2022)
    cases = []
    # Gaussian tokens, N > 25 so torch.cdist takes its matrix-product path (as it does in the model)
    cases.append(('gauss', torch.randn(2, 49, 16, generator=g, dtype=torch.float64), 13, 5, None))
    # a smooth 14x14 feature map (neighbouring tokens similar), ClusTR stage-1-like ratio 16
    fmap = torch.nn.functional.avg_pool2d(torch.randn(1, 8, 18, 18, generator=g, dtype=torch.float64), 5, 1)
    cases.append(('smooth_map', fmap.flatten(2).transpose(1, 2).contiguous(), 13, 5, None))
    # few tokens, small k, few channels
    cases.append(('small', torch.randn(2, 20, 4, generator=g, dtype=torch.float64), 5, 3, None))
    # a tight blob, a loose one and two outliers (chains of denser tokens differ from nearest centres)
    blob = 0.05 * torch.randn(8, 2, generator=g, dtype=torch.float64)
    loose = torch.tensor([1.5, 0.0], dtype=torch.float64) + 0.6 * torch.randn(9, 2, generator=g, dtype=torch.float64)
    out = torch.tensor([[-4.0, 0.3], [5.0, -0.2]], dtype=torch.float64)
    cases.append(('blobs', torch.cat([blob, loose, out]).unsqueeze(0), 3, 3, None))
    # padded tokens (token_mask, 0 = padding): TCFormer sends every padded token to cluster 0
    mask = torch.ones(2, 30, dtype=torch.long)
    mask[0, [3, 11, 17, 29]] = 0
    mask[1, [0, 1, 2, 20, 21]] = 0
    cases.append(('masked', torch.randn(2, 30, 8, generator=g, dtype=torch.float64), 6, 5, mask))
    return cases


def _token_dict(x):
    B, N, _ = x.shape
    return dict(x=x, token_num=N, map_size=[1, N], init_grid_size=[1, N],
                idx_token=torch.arange(N).expand(B, N).contiguous(), agg_weight=x.new_ones(B, N, 1))


def run_case(official, name, x, cluster_num, k, token_mask, g):
    results = []
    for seed in SEEDS:
        torch.manual_seed(seed)  # the official density noise
        idx, num = official.cluster_dpc_knn(_token_dict(x), cluster_num, k=k, token_mask=token_mask)
        results.append(idx)
    if any(not torch.equal(r, results[0]) for r in results):
        raise SystemExit(f'case {name}: the official result depends on the tie-breaking noise; change the input')
    idx = results[0]
    B, N, _ = x.shape
    s = torch.randn(B, N, generator=g, dtype=torch.float64)
    merged = official.merge_tokens(_token_dict(x), idx, num, s.exp().unsqueeze(-1))['x']
    merged_unit = official.merge_tokens(_token_dict(x), idx, num, None)['x']
    out = dict(name=name, x=x, cluster_num=int(num), k=k, idx_cluster=idx, score=s, x_merged=merged,
               x_merged_unit=merged_unit)
    if token_mask is not None:
        out['token_mask'] = token_mask > 0
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--tcformer', type=Path, required=True, help='a TCFormer checkout (see the docstring)')
    parser.add_argument('--out', type=Path, default=Path('tests/data/fixtures/dpc_knn_tcformer.pt'))
    args = parser.parse_args(argv)
    official = load_official(args.tcformer)
    commit = _commit(args.tcformer)
    if commit != OFFICIAL_COMMIT:
        print(f'warning: checkout is at {commit}, the documented fixture was made at {OFFICIAL_COMMIT}')
    g = torch.Generator().manual_seed(7)
    cases = [run_case(official, *case, g) for case in make_cases()]
    fixture = dict(source=f'zengwang430521/TCFormer@{commit}:{OFFICIAL_FILE} cluster_dpc_knn, merge_tokens',
                   torch_version=str(torch.__version__), seeds=list(SEEDS), cases=cases)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(fixture, args.out)
    print(f'wrote {args.out} ({args.out.stat().st_size / 1024:.1f} KiB): '
          + ', '.join(f"{c['name']} {tuple(c['x'].shape)} -> {c['cluster_num']}" for c in cases))


if __name__ == '__main__':
    main()
