# Context Clusters CoC-Small on ImageNet-1k: the CoC-Tiny recipe (see coc-tiny_8xb128_in1k.py) with the
# small architecture. Params 14.657M (paper "14.0M" = /2^20). Paper 2.6 GFLOPs; tools/get_flops.py: 2.806 G
# multiply-adds (2.779 G without the clustering ops).
# Top-1: paper 77.5, re-trained release 78.1.
# ASSUMPTION: stochastic depth 0.1. The official README gives `--drop-path 0.1` in its (tiny) example
# command and publishes no per-model value; 0.1 is what PoolFormer (the code base CoC's training script
# comes from) uses for its models of this size (S12 / S24).
_base_ = './coc-tiny_8xb128_in1k.py'

model = dict(
    backbone=dict(arch='small', drop_path_rate=0.1),
    head=dict(in_channels=512))
