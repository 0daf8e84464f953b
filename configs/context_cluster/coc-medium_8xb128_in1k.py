# Context Clusters CoC-Medium on ImageNet-1k: the CoC-Tiny recipe (see coc-tiny_8xb128_in1k.py) with the
# medium architecture. Params 29.291M (paper "27.9M" = /2^20). Paper 5.5 GFLOPs; tools/get_flops.py: 5.978 G
# multiply-adds (5.898 G without the clustering ops).
# Top-1: paper 81.0, re-trained release 81.2.
# ASSUMPTION: stochastic depth 0.2. Not published for CoC; PoolFormer (whose training script CoC's is)
# raises it with depth / width (S12, S24: 0.1; S36: 0.2; M36: 0.3) and CoC-Medium has 24 blocks and 29M
# parameters, between PoolFormer-S24 and -S36.
_base_ = './coc-tiny_8xb128_in1k.py'

model = dict(
    backbone=dict(arch='medium', drop_path_rate=0.2),
    head=dict(in_channels=512))
