"""Cost of ClusterFormer's recursion: one training step with T = 3 against T = 1, measured in one run.

The supplementary material (S3.2) reports a training-speed reduction of about 3.81% for the clustering loops.
This script builds two copies of the same model that differ only in ``num_iters`` (T adds no parameters, so
both get the same weights), and times full training steps (forward, cross-entropy loss, backward, AdamW step)
**interleaved** (T=1, T=3, T=1, ...) so that both see the same machine state, after warm-up steps, on one
thread by default. It prints the median step time of each and the relative cost ``median(T3) / median(T1) - 1``.

Examples::

    python tools/benchmark/clusterformer_recursion_cost.py                     # tiny classifier, 2 x 3 x 128^2
    python tools/benchmark/clusterformer_recursion_cost.py --size 224 --batch 8 --steps 20 --threads 8
    python tools/benchmark/clusterformer_recursion_cost.py --compat --size 256  # the released layer
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn


def build(arch: str, num_iters: int, compat: bool, num_classes: int) -> nn.Module:
    from mmcluster.models.backbones.clusterformer import ClusterFormer
    from mmcluster.models.necks.clusterformer_neck import ConcatGlobalAveragePooling

    class Classifier(nn.Module):  # backbone -> concatenating GAP -> linear (the released classifier)

        def __init__(self):
            super().__init__()
            self.backbone = ClusterFormer(arch, num_iters=num_iters, compat=compat)
            self.neck = ConcatGlobalAveragePooling()
            self.fc = nn.Linear(sum(self.backbone.embed_dims), num_classes)

        def forward(self, x):
            return self.fc(self.neck(self.backbone(x))[0])

    return Classifier()


def step_time(model, opt, x, y) -> float:
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', default='tiny', help="'tiny', 'small' or a JSON dict (see ClusterFormer)")
    parser.add_argument('--size', type=int, default=128, help='square input side')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--steps', type=int, default=7, help='timed steps per model')
    parser.add_argument('--warmup', type=int, default=1, help='untimed steps per model')
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--compat', action='store_true', help='the released layer (input multiple of 128)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)

    if args.arch.strip().startswith('{'):
        args.arch = json.loads(args.arch)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    models = {t: build(args.arch, t, args.compat, 10) for t in (1, 3)}
    models[3].load_state_dict(models[1].state_dict())  # same weights: T adds no parameters
    opts = {t: torch.optim.AdamW(m.parameters(), lr=1e-4) for t, m in models.items()}
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 10, (args.batch, ))
    times = {1: [], 3: []}
    for i in range(args.warmup + args.steps):
        order = (1, 3) if i % 2 == 0 else (3, 1)  # alternate which one runs first
        for t in order:
            dt = step_time(models[t], opts[t], x, y)
            if i >= args.warmup:
                times[t].append(dt)
    med = {t: statistics.median(v) for t, v in times.items()}
    result = dict(arch=args.arch, size=args.size, batch=args.batch, threads=args.threads, compat=args.compat,
                  steps=args.steps, median_s_T1=round(med[1], 4), median_s_T3=round(med[3], 4),
                  relative_cost_percent=round(100 * (med[3] / med[1] - 1), 2), paper_percent=3.81)
    print(json.dumps(result))
    print(f'training step T=3 vs T=1: {med[3]:.3f}s vs {med[1]:.3f}s (median of {args.steps}, interleaved) '
          f'-> +{100 * (med[3] / med[1] - 1):.1f}% (paper, supplementary S3.2: about +3.8%)')
    return result


if __name__ == '__main__':
    main()
