from .kmax_aux_semantic_loss import KMaXAuxSemanticLoss
from .kmax_criterion import KMaXCriterion
from .kmax_insdis_loss import KMaXPixelInsDisLoss
from .kmax_mask_id_loss import KMaXMaskIDLoss
from .kmax_matcher import kmax_hungarian_match
from .kmax_pq_loss import KMaXPQLoss

__all__ = [
'KMaXPQLoss', 'KMaXMaskIDLoss', 'KMaXPixelInsDisLoss', 'KMaXAuxSemanticLoss', 'KMaXCriterion',
'kmax_hungarian_match'
]
