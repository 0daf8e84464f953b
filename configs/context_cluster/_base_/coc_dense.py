# Context Clusters for dense prediction (docs/context_cluster.md), merged into a toolkit's detection /
# segmentation model by the configs of this folder: `model = dict(backbone=_base_.coc_backbone, ...)`.
# CoC-Small/4: 2 x 2 centres per region (`proposal=2`; /25 -> 5, /49 -> 7) in every stage, regions 8/4/2/1 per
# side, all four stages out through their GroupNorms, no stochastic depth (the official dense configs).
# Aggregation `norm_by=None`: the paper's Eq. 1 ('sim'), unless the converted checkpoint of a Pretrained init_cfg
# records another one in its meta (the generation-1 files, i.e. the official COCO / ADE20K releases, were trained
# with 'mask'; docs/context_cluster.md). Without an init_cfg the backbone gets the official initialisation
# (truncated normal, std 0.02, on the Linear layers; nothing is downloaded).
custom_imports = dict(imports=['mmcluster'], allow_failed_imports=False)
coc_backbone = dict(
    _delete_=True,
    type='ContextCluster',
    arch='small',
    proposal=2,
    out_indices=(0, 1, 2, 3),
    norm_by=None,
    drop_path_rate=0.)
coc_widths = dict(tiny=[32, 64, 196, 320], small=[64, 128, 320, 512], medium=[64, 128, 320, 512])
