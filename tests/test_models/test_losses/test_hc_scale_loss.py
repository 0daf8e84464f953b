"""HCScaleLoss: the L1 regulariser on HCFormer's clustering scales (paper Sec. 3.1 / official code)."""
import pytest
import torch

from mmcluster.models.losses import HCScaleLoss


def test_modes_weight_and_gradient():
    s = [torch.tensor(0.2, requires_grad=True), torch.tensor([-0.1]), torch.tensor(0.05)]  # 0-d and official [1]
    assert HCScaleLoss(0.1, 'abs_of_sum')(s).item() == pytest.approx(0.1 * abs(0.2 - 0.1 + 0.05))
    assert HCScaleLoss(0.1, 'sum_of_abs')(s).item() == pytest.approx(0.1 * (0.2 + 0.1 + 0.05))
    assert HCScaleLoss(2.0, 'sum_of_abs')(s[:1]).item() == pytest.approx(0.4)
    loss = HCScaleLoss(0.5)(s)
    loss.backward()
    assert s[0].grad.item() == pytest.approx(0.5)  # d(0.5 |sum s|) / ds_0 with a positive sum
    # the two modes agree while every scale is non-negative (they start at 0.1)
    pos = [torch.tensor(v) for v in (0.1, 0.3, 0.02)]
    assert HCScaleLoss(mode='abs_of_sum')(pos).item() == pytest.approx(HCScaleLoss(mode='sum_of_abs')(pos).item())


def test_errors_and_registry():
    with pytest.raises(ValueError, match="'abs_of_sum', 'sum_of_abs'"):
        HCScaleLoss(mode='l2')
    with pytest.raises(ValueError, match='at least one scale'):
        HCScaleLoss()([])
    from mmcluster.registry import MODELS
    loss = MODELS.build(dict(type='HCScaleLoss', loss_weight=0.3, mode='sum_of_abs'))
    assert isinstance(loss, HCScaleLoss) and loss.loss_weight == 0.3 and loss.mode == 'sum_of_abs'
