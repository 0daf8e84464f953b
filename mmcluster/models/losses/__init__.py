"""Losses of the mmcluster models (registered; build them from a config dict with ``loss_weight``)."""
from .hc_scale_loss import SCALE_LOSS_MODES, HCScaleLoss
from .kmax_aux_semantic_loss import KMaXAuxSemanticLoss
from .kmax_criterion import KMaXCriterion
from .kmax_insdis_loss import KMaXPixelInsDisLoss
from .kmax_mask_id_loss import KMaXMaskIDLoss
from .kmax_matcher import kmax_hungarian_match
from .kmax_pq_loss import KMaXPQLoss

__all__ = ['HCScaleLoss', 'SCALE_LOSS_MODES',
           'KMaXPQLoss', 'KMaXMaskIDLoss', 'KMaXPixelInsDisLoss', 'KMaXAuxSemanticLoss', 'KMaXCriterion',
           'kmax_hungarian_match']
