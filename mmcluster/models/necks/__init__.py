# HCResNet is a backbone; it is exported from here because backbones/__init__.py belongs to other work
# (move this line to backbones/__init__.py when convenient).
from ..backbones.hc_resnet import HCResNet
from .hcformer_neck import HCFeatures, HCFormerNeck

__all__ = ['HCFormerNeck', 'HCFeatures', 'HCResNet']
