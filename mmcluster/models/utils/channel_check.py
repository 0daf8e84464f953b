"""Build-time check that a neck / head expects the channels the backbone returns.

A detector, segmentor or classifier of any toolkit builds its parts in its ``__init__``: ``self.backbone = ...``,
then ``self.neck = ...`` (or directly a head). A neck built for other channels than the backbone's would only
fail at the first forward, as a shape error inside a convolution. mmcluster installs a PyTorch *module
registration hook* (:func:`torch.nn.modules.module.register_module_module_registration_hook`, called whenever a
module is assigned as an attribute of another) that, when the first consumer of the backbone's features is
assigned next to a ``backbone`` -- ``neck``, else ``decode_head`` / ``auxiliary_head`` / ``panoptic_head`` /
``bbox_head`` / ``rpn_head`` / ``head`` -- compares what the backbone declares (:func:`backbone_out_channels`)
with what the consumer expects (:func:`expected_in_channels`) and raises ``ValueError`` naming both, so the
model fails while it is being built. A classifier head behind a pooling neck (:data:`POOLING_NECKS`) is checked
against the pooled channels. Only models with an mmcluster backbone or an mmcluster consumer are
checked, and a part that declares nothing checkable is left alone (never a false alarm).
"""
from typing import Dict, List, Optional

import torch.nn as nn
from torch.nn.modules.module import register_module_module_registration_hook

#: attribute names under which the toolkits' models hold the first consumer of the backbone's features
CONSUMERS = ('neck', 'decode_head', 'auxiliary_head', 'panoptic_head', 'bbox_head', 'rpn_head', 'head')


def _is_mmcluster(module: nn.Module) -> bool:
    return type(module).__module__.startswith('mmcluster.')


def backbone_out_channels(backbone: nn.Module) -> Optional[List[int]]:
    """The channels of the backbone's returned maps, in order, or ``None`` if it declares none.

    mmcluster backbones declare ``out_channels``; the toolkits' ResNets (mmdet / mmseg / mmpretrain style, with
    ``block``, ``base_channels`` and ``out_indices``) double the width per stage.
    """
    try:
        declared = getattr(backbone, 'out_channels', None)
    except NotImplementedError:
        declared = None
    if isinstance(declared, (list, tuple)) and declared and all(isinstance(c, int) for c in declared):
        return [int(c) for c in declared]
    block, base = getattr(backbone, 'block', None), getattr(backbone, 'base_channels', None)
    indices = getattr(backbone, 'out_indices', None)
    if hasattr(block, 'expansion') and isinstance(base, int) and isinstance(indices, (list, tuple)):
        return [base * 2**i * block.expansion for i in indices]
    return None


def expected_in_channels(consumer: nn.Module) -> Optional[Dict[int, int]]:
    """What a neck / head expects: ``{backbone output index: channels}``, or ``None`` if it does not say.

    * ``input_channels`` (a list): one entry per backbone output (HCFormerNeck, whose inputs depend on
      ``coarse_inputs``);
    * an mmseg decode head (``in_index`` + ``in_channels``): the selected outputs;
    * ``in_channels`` a list (FPN, HCFormerNeck, the ClusterFormer and kMaX-DeepLab heads): every output, in
      order;
    * mmdet's ``ChannelMapper``: the input channels of its convolutions.
    """
    declared = getattr(consumer, 'input_channels', None)  # a consumer that says it (HCFormerNeck)
    if isinstance(declared, (list, tuple)) and all(isinstance(c, int) for c in declared):
        return dict(enumerate(declared))
    in_channels = getattr(consumer, 'in_channels', None)
    in_index = getattr(consumer, 'in_index', None)
    if in_index is not None:
        if isinstance(in_index, int) and isinstance(in_channels, int):
            return {in_index: in_channels}
        if getattr(consumer, 'input_transform', None) == 'multiple_select' and isinstance(in_channels, (list, tuple)):
            return dict(zip(in_index, in_channels))
        return None  # resize_concat: a sum, not a per-output number
    if isinstance(in_channels, (list, tuple)) and all(isinstance(c, int) for c in in_channels):
        return dict(enumerate(in_channels))
    convs = getattr(consumer, 'convs', None)
    if type(consumer).__name__ == 'ChannelMapper' and isinstance(convs, nn.ModuleList):
        return {i: m.conv.in_channels for i, m in enumerate(convs)}
    return None


def check_channels(backbone: nn.Module, consumer: nn.Module, consumer_name: str) -> None:
    """Raise ``ValueError`` if ``consumer`` expects other channels than ``backbone`` returns.

    Raises:
        ValueError: naming the backbone's ``out_channels``, the consumer's ``in_channels`` and the mismatch.
    """
    have, want = backbone_out_channels(backbone), expected_in_channels(consumer)
    if have is None or want is None:
        return
    where = (f'{type(backbone).__name__} returns {len(have)} feature maps with out_channels={have}, but the '
             f'{consumer_name} {type(consumer).__name__} expects')
    takes_all = getattr(consumer, 'in_index', None) is None
    if takes_all and len(want) != len(have):
        raise ValueError(f'{where} {len(want)} inputs with in_channels={[want[i] for i in sorted(want)]}; set its '
                         f'in_channels={have} (or the backbone\'s out_indices)')
    bad = {i: c for i, c in want.items() if i >= len(have) or have[i] != c}
    if bad:
        got = {i: (have[i] if i < len(have) else 'no such output') for i in bad}
        raise ValueError(f'{where} in_channels {bad} (by output index); the backbone gives {got}: set the '
                         f'{consumer_name}\'s in_channels to match out_channels={have}')


#: necks that only pool: the channels their head sees, from the backbone's ``out_channels``
POOLING_NECKS = {
    'GlobalAveragePooling': lambda channels: channels[-1],  # mmpretrain's heads read the last pooled map
    'ConcatGlobalAveragePooling': sum,  # mmcluster: the pooled maps concatenated
}


def _check_head_after_pooling(backbone: nn.Module, neck: nn.Module, head: nn.Module, name: str) -> None:
    have = backbone_out_channels(backbone)
    pooled = POOLING_NECKS.get(type(neck).__name__)
    want = getattr(head, 'in_channels', None)
    if have is None or pooled is None or not isinstance(want, int):
        return
    if pooled(have) != want:
        raise ValueError(f'{type(backbone).__name__} returns out_channels={have}, which the neck '
                         f'{type(neck).__name__} pools to {pooled(have)} channels, but the {name} '
                         f'{type(head).__name__} has in_channels={want}; set its in_channels={pooled(have)}')


def _on_registration(parent: nn.Module, name: str, module: Optional[nn.Module]) -> None:
    if name not in CONSUMERS or module is None:
        return
    children = parent._modules
    backbone, neck = children.get('backbone'), children.get('neck')
    if backbone is None or not (_is_mmcluster(backbone) or _is_mmcluster(module) or _is_mmcluster(neck)):
        return
    if name == 'neck' or neck is None:
        check_channels(backbone, module, name)
    else:  # the head consumes the neck's output: checkable when the neck only pools
        _check_head_after_pooling(backbone, neck, module, name)


_HANDLE = None


def install_channel_check() -> None:
    """Install the registration hook once per process (``import mmcluster`` does)."""
    global _HANDLE
    if _HANDLE is None:
        _HANDLE = register_module_module_registration_hook(_on_registration)
