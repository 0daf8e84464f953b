# ClusTR-S on ImageNet-1k: the ClusTR-T recipe (./clustr-t_8xb128_in1k.py, Table A2) with the small arch
# (3 / 5 / 13 / 2 blocks); stochastic depth 0.1, no gradient clipping.
# Paper: 22.7M parameters, 4.8 GFLOPs, top-1 83.2 (this model: 22.69M).
_base_ = './clustr-t_8xb128_in1k.py'

model = dict(backbone=dict(arch='small', drop_path_rate=0.1))
