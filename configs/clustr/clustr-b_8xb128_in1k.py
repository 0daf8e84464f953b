# ClusTR-B on ImageNet-1k: the ClusTR-T recipe (./clustr-t_8xb128_in1k.py, Table A2) with the base arch
# (3 / 5 / 18 / 3 blocks, stage-3 width 320 / 5 heads), stochastic depth 0.3 and gradient clipping at max-norm 1.0.
# Paper: 40.2M parameters (40.3M in the abstract), 7.5 GFLOPs, top-1 84.1 (this model: 40.25M).
_base_ = './clustr-t_8xb128_in1k.py'

model = dict(backbone=dict(arch='base', drop_path_rate=0.3))
optim_wrapper = dict(clip_grad=dict(_delete_=True, max_norm=1.0))
