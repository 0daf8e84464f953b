from .hcformer_neck import HCFeatures, HCFormerNeck

__all__ = ['HCFormerNeck', 'HCFeatures']
