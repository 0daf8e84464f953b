"""Cluster-based decoding of HCFormer (paper Eq. 5) and the 3x3 candidate-cluster layout it shares with the
clustering module (:class:`~mmcluster.models.layers.HCClustering`).

Paper: Teppei Suzuki, "Clustering as Attention: Unified Image Segmentation with Hierarchical Clustering"
(arXiv 2205.09949), Sec. 2.3-2.4 and Appendix B.

Layout. A fine map of size ``H x W`` is clustered onto the coarse map of size ``Hc x Wc`` with
``Hc = ceil(H / 2)``, ``Wc = ceil(W / 2)`` (the output of a stride-2 downsampling with padding). Fine pixel
``p = (i, j)`` lies in the 2x2 window of its parent coarse cell ``q(p) = (floor(i / 2), floor(j / 2))``; its
candidate clusters are the 3x3 coarse cells around the parent, ``q(p) + o_k`` with

    o_k = (dy, dx),  dy, dx in {-1, 0, 1},  k = 3 * (dy + 1) + (dx + 1)        (k = 4 is the parent itself).

An assignment map ``A`` has shape ``[B, 9, H, W]`` with ``A[:, k, i, j]`` the weight of candidate ``k`` for
pixel ``(i, j)``; candidates outside the coarse map have weight 0 and ``sum_k A[:, k] = 1``.

Decoding (Eq. 5) maps a coarse map ``x`` (``[B, C, Hc, Wc]``) to the fine grid:

    y[:, :, i, j] = sum_k A[:, k, i, j] * x[:, :, floor(i / 2) + dy_k, floor(j / 2) + dx_k]

(``x`` taken as 0 outside the map). Odd ``H`` or ``W`` need no special case: the parent cell is still
``floor(i / 2)``, and the last coarse row / column simply has a half-empty window.

Implementation on a CPU (float32 / float64, eager; :func:`_sparse_path`): Eq. 5 is a sparse matrix product. With
the points channels-last, ``Y [B*H*W, C] = S X`` where ``X [B*Hc*Wc, C]`` and ``S`` holds, in the row of fine
pixel ``p``, the weights ``A_kp`` at the columns of its on-map candidate cells (at most 9 entries a row; the
block-diagonal ``S`` of a batch is one matrix). MKL's CSR product reads ``x`` and ``A`` once and writes ``y``
once, so the output is returned **channels-last** (``[B, C, H, W]`` with ``torch.channels_last`` strides: a
transposing copy to NCHW would cost more than the product). The backward is the transposed product
``dL/dX = S^T dL/dY`` and ``dL/dA_kp = <dL/dY_p, X_{q(p)+o_k}>``, a product sampled at the entries of ``S``
(:func:`torch.sparse.sampled_addmm`). The index arrays of ``S`` and ``S^T`` depend on the size only and are
cached. Off-map candidates have no entry, so their weights never enter the result and get gradient 0, exactly as
with the zero padding of the dense form.

Elsewhere (CUDA, half precision, tracing, ONNX export, ``torch.compile``; exact, no 9x unfolded copy):
``x`` is upsampled by nearest-neighbour 2x, so that
``U[i, j] = x[floor(i / 2), floor(j / 2)]`` and hence ``x[floor(i / 2) + dy, floor(j / 2) + dx] =
U[i + 2 dy, j + 2 dx]``; ``U`` is zero-padded by 2 and the output is 9 shifted in-place multiply-adds
(``addcmul_``) of ``A[:, k]`` with views of ``U``, one block of channels at a time so that the block's 9 passes
stay in the L2 cache. Memory: ``U`` of one channel block (~0.5 MiB) during the call instead of the 9 x
``Hc x Wc`` x C candidate tensor of the unfold form (2.25x the output), and the backward (hand-written) saves
only ``x`` and ``A`` and recomputes ``U``. ``tools/benchmark/clustering_ops.py`` times both forms (forward
and training step), ``tools/benchmark/hc_decode_memory.py`` measures their memory.
"""
import warnings
from functools import lru_cache
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmcluster.models.utils.eager import running_eagerly

#: candidate offsets ``(dy, dx)`` in the order of the assignment channel ``k = 3 * (dy + 1) + (dx + 1)``
HC_OFFSETS: Tuple[Tuple[int, int], ...] = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
NUM_CANDIDATES = 9


def hc_coarse_size(height: int, width: int) -> Tuple[int, int]:
    """Size of the coarse map a ``height x width`` map is clustered onto: ``(ceil(H/2), ceil(W/2))``."""
    return (height + 1) // 2, (width + 1) // 2


def hc_candidate_valid(height: int, width: int, device=None) -> Tensor:
    """``[9, H, W]`` bool: candidate ``k`` of pixel ``(i, j)`` lies inside the ``ceil(H/2) x ceil(W/2)`` map."""
    hc, wc = hc_coarse_size(height, width)
    qy = torch.arange(height, device=device) // 2
    qx = torch.arange(width, device=device) // 2
    rows = [((qy + dy >= 0) & (qy + dy < hc))[:, None] & ((qx + dx >= 0) & (qx + dx < wc))[None, :]
            for dy, dx in HC_OFFSETS]
    return torch.stack(rows)


def check_assignment(assign: Tensor, coarse_hw: Sequence[int], name: str = 'assign') -> None:
    """Raise a ValueError unless ``assign`` is ``[B, 9, H, W]`` with ``ceil(H/2), ceil(W/2) == coarse_hw``."""
    if assign.dim() != 4 or assign.shape[1] != NUM_CANDIDATES:
        raise ValueError(f'{name} must be [B, 9, H, W], got {tuple(assign.shape)}')
    expected = hc_coarse_size(*assign.shape[-2:])
    if tuple(coarse_hw) != expected:
        raise ValueError(f'{name} of size {tuple(assign.shape[-2:])} expects a coarse map of size '
                         f'{expected} (ceil of half), got {tuple(coarse_hw)}')


#: float32 elements of one channel block of the output (512 KiB): the 9 multiply-adds of a block then run in a
#: core's L2 cache instead of streaming the whole output 9 times through memory (the decoded maps are large:
#: 100 masks at 200x200 are 16 MB)
_BLOCK_ELEMENTS = 1 << 17


def _channel_blocks(channels: int, height: int, width: int) -> List[Tuple[int, int]]:
    """``(start, stop)`` channel ranges of about :data:`_BLOCK_ELEMENTS` output elements each."""
    step = max(1, _BLOCK_ELEMENTS // max(1, height * width))
    return [(c0, min(channels, c0 + step)) for c0 in range(0, channels, step)] or [(0, 0)]  # no channels: one empty


def _shift(up: Tensor, dy: int, dx: int, height: int, width: int) -> Tensor:
    """View of ``U`` (zero-padded by 2) holding ``x[floor(i/2) + dy, floor(j/2) + dx]`` at fine pixel ``(i, j)``."""
    return up[:, :, 2 + 2 * dy:2 + 2 * dy + height, 2 + 2 * dx:2 + 2 * dx + width]


class _PaddedGrid:
    """A reusable zero-bordered ``[B, n, 2 Hc + 4, 2 Wc + 4]`` buffer for one channel block and the views of its
    interior and of its 9 shifts (made once: the views, not the arithmetic, dominate small blocks)."""

    def __init__(self, like: Tensor, channels: int, coarse_hw: Sequence[int], fine_hw: Sequence[int]) -> None:
        hc, wc = coarse_hw
        self.buf = like.new_zeros(like.shape[0], channels, 2 * hc + 4, 2 * wc + 4)
        self.channels = channels
        self.fine_hw = fine_hw
        self.interior = self.buf[:, :, 2:2 + 2 * hc, 2:2 + 2 * wc]
        self.shifts = [_shift(self.buf, dy, dx, *fine_hw) for dy, dx in HC_OFFSETS]

    def views(self, n: int) -> Tuple[Tensor, List[Tensor]]:
        """The interior and the 9 shifted views of the first ``n`` channels."""
        if n == self.channels:
            return self.interior, self.shifts
        return self.interior[:, :n], [v[:, :n] for v in self.shifts]

    def upsample(self, x: Tensor) -> List[Tensor]:
        """Write ``U[i, j] = x[i // 2, j // 2]`` (nearest 2x) of the block ``x`` into the buffer; its 9 shifts."""
        b, n, hc, wc = x.shape
        interior, shifts = self.views(n)
        interior.view(b, n, hc, 2, wc, 2).copy_(x[:, :, :, None, :, None].expand(b, n, hc, 2, wc, 2))
        return shifts


class _HCDecode(torch.autograd.Function):
    """Eq. 5, blocked over channels, with a hand-written backward that saves only ``x`` and ``A`` (``U`` is
    recomputed per block), so a decoded map costs no upsampled copy between forward and backward (HCFormer
    decodes 9 predictions per level). Per channel block (:func:`_channel_blocks`) the forward writes ``U`` into
    a reused zero-bordered buffer and accumulates the 9 shifted products in place; the backward does the same
    for ``dL/dA_k = sum_c g * U_k`` and scatters ``g * A_k`` into a reused buffer whose 2x2 blocks sum to
    ``dL/dx``."""

    @staticmethod
    def forward(ctx, x: Tensor, assign: Tensor) -> Tensor:
        b, c, hc, wc = x.shape
        fine_hw = assign.shape[-2:]
        blocks = _channel_blocks(c, *fine_hw)
        weights = [assign[:, k:k + 1] for k in range(NUM_CANDIDATES)]
        grid = _PaddedGrid(x, blocks[0][1] - blocks[0][0], (hc, wc), fine_hw)
        out = x.new_empty(b, c, *fine_hw)
        for c0, c1 in blocks:
            shifts = grid.upsample(x[:, c0:c1])
            block = out[:, c0:c1]
            torch.mul(shifts[4], weights[4], out=block)
            for k in range(NUM_CANDIDATES):
                if k != 4:
                    block.addcmul_(shifts[k], weights[k])
        ctx.save_for_backward(x, assign)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, assign = ctx.saved_tensors
        b, c, hc, wc = x.shape
        fine_hw = assign.shape[-2:]
        grad = grad.contiguous()
        blocks = _channel_blocks(c, *fine_hw)
        step = blocks[0][1] - blocks[0][0]
        weights = [assign[:, k:k + 1] for k in range(NUM_CANDIDATES)]
        grad_x = grad_assign = None
        if ctx.needs_input_grad[0]:  # dL/dU = sum_k shift_k^T (g * A_k); dL/dx = the 2x2 block sums of dL/dU
            grad_x = x.new_empty(x.shape)
            grad_up = _PaddedGrid(x, step, (hc, wc), fine_hw)
        if ctx.needs_input_grad[1]:  # dL/dA_k = sum_c g * U_k: per-channel products accumulated over the blocks,
            # summed over the block's channels once at the end (one multiply-add per block and candidate)
            up = _PaddedGrid(x, step, (hc, wc), fine_hw)
            products = grad.new_zeros(NUM_CANDIDATES, b, step, *fine_hw)
        for c0, c1 in blocks:
            g = grad[:, c0:c1]
            if grad_x is not None:
                grad_up.buf.zero_()
                interior, shifts = grad_up.views(c1 - c0)
                for k in range(NUM_CANDIDATES):
                    shifts[k].addcmul_(g, weights[k])
                cells = interior.unflatten(3, (wc, 2)).unflatten(2, (hc, 2))  # [B, n, Hc, 2, Wc, 2]
                torch.add(cells[:, :, :, 0, :, 0], cells[:, :, :, 0, :, 1], out=grad_x[:, c0:c1])
                grad_x[:, c0:c1].add_(cells[:, :, :, 1, :, 0]).add_(cells[:, :, :, 1, :, 1])
            if ctx.needs_input_grad[1]:
                shifts = up.upsample(x[:, c0:c1])
                for k in range(NUM_CANDIDATES):
                    products[k, :, :c1 - c0].addcmul_(g, shifts[k])
        if ctx.needs_input_grad[1]:
            grad_assign = products.sum(2).transpose(0, 1)  # [B, 9, H, W]
        return grad_x, grad_assign


@lru_cache(maxsize=32)
def _sparse_layout(batch: int, height: int, width: int, device: torch.device):
    """Index arrays of the block-diagonal decoding matrix ``S [B*H*W, B*Hc*Wc]`` and of ``S^T`` (CSR), for a
    batch of ``height x width`` maps: ``(entries, crow, col, crow_t, col_t, order_t)``.

    ``entries`` are the flat positions, in ``A`` permuted to ``[B, H, W, 9]``, of the on-map candidates (the
    stored entries of ``S`` in CSR order); ``order_t`` lists them in the CSR order of ``S^T``."""
    with torch.inference_mode(False), torch.no_grad():
        hc, wc = hc_coarse_size(height, width)
        qy = (torch.arange(height) // 2)[:, None, None]
        qx = (torch.arange(width) // 2)[None, :, None]
        dy = torch.tensor([o[0] for o in HC_OFFSETS])[None, None]
        dx = torch.tensor([o[1] for o in HC_OFFSETS])[None, None]
        cy, cx = qy + dy, qx + dx  # [H, W, 9]
        on_map = ((cy >= 0) & (cy < hc) & (cx >= 0) & (cx < wc)).expand(batch, -1, -1, -1)
        cell = (cy * wc + cx).expand(batch, -1, -1, -1) + (torch.arange(batch) * hc * wc)[:, None, None, None]
        entries = on_map.reshape(-1).nonzero().squeeze(1)
        col = cell.reshape(-1)[entries]
        crow = torch.zeros(batch * height * width + 1, dtype=torch.long)
        crow[1:] = on_map.reshape(-1, NUM_CANDIDATES).sum(1).cumsum(0)
        order_t = torch.sort(col, stable=True).indices  # entries grouped by cell, pixels ascending within
        row_of_entry = torch.repeat_interleave(torch.arange(batch * height * width), crow.diff())
        crow_t = torch.zeros(batch * hc * wc + 1, dtype=torch.long)
        crow_t[1:] = torch.bincount(col, minlength=batch * hc * wc).cumsum(0)
        col_t = row_of_entry[order_t]
        # MKL's CSR routines take 32-bit indices (PyTorch converts 64-bit ones on every call)
        index = torch.int32 if batch * height * width * NUM_CANDIDATES < 2**31 else torch.long
        crow, col, crow_t, col_t = (t.to(index) for t in (crow, col, crow_t, col_t))
        return tuple(t.to(device) for t in (entries, crow, col, crow_t, col_t, order_t))


def _csr(crow: Tensor, col: Tensor, values: Tensor, columns: int) -> Tensor:
    """The CSR matrix with ``len(crow) - 1`` rows and ``columns`` columns (indices trusted: built here)."""
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the products used here are MKL's
        warnings.simplefilter('ignore', UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, size=(crow.numel() - 1, columns), check_invariants=False)


def _sparse_product(matrix: Tensor, dense: Tensor) -> Tensor:
    """``matrix @ dense`` (CSR times row-major), written by MKL straight into a new row-major result."""
    out = dense.new_empty(matrix.shape[0], dense.shape[1])
    # out= with beta 0: no zero-filled result and no copy of it (torch.mm(S, dense) makes both)
    return torch.addmm(out, matrix, dense, beta=0.0, out=out)


def _rows(t: Tensor) -> Tensor:
    """``[B, C, H, W]`` -> the row-major ``[B*H*W, C]`` matrix of its channels-last points (a view when ``t``
    is channels-last, else one copy: MKL's products are fastest with row-major operands)."""
    b, c, h, w = t.shape
    return t.permute(0, 2, 3, 1).reshape(b * h * w, c)


def _channels_last(rows: Tensor, b: int, c: int, h: int, w: int) -> Tensor:
    """The ``[B*H*W, C]`` matrix as a ``[B, C, H, W]`` tensor with channels-last strides (a view)."""
    return rows.view(b, h, w, c).permute(0, 3, 1, 2)


class _HCDecodeSparse(torch.autograd.Function):
    """Eq. 5 as MKL's CSR products on a CPU (see the module docstring). The backward saves the row-major points
    of ``x`` (a view when ``x`` is channels-last) and the entries of ``S`` (the on-map weights of ``A``)."""

    @staticmethod
    def forward(ctx, x: Tensor, assign: Tensor) -> Tensor:
        b, c, hc, wc = x.shape
        h, w = assign.shape[-2:]
        entries, crow, col, *_ = _sparse_layout(b, h, w, x.device)
        values = assign.permute(0, 2, 3, 1).reshape(-1).index_select(0, entries)
        points = _rows(x)
        ctx.save_for_backward(points, values)
        ctx.shapes = (b, c, hc, wc, h, w)
        return _channels_last(_sparse_product(_csr(crow, col, values, b * hc * wc), points), b, c, h, w)

    @staticmethod
    def backward(ctx, grad: Tensor):
        points, values = ctx.saved_tensors
        b, c, hc, wc, h, w = ctx.shapes
        entries, crow, col, crow_t, col_t, order_t = _sparse_layout(b, h, w, points.device)
        grad_rows = _rows(grad)
        grad_x = grad_assign = None
        if ctx.needs_input_grad[0]:  # S^T dL/dY
            matrix_t = _csr(crow_t, col_t, values.index_select(0, order_t), b * h * w)
            grad_x = _channels_last(_sparse_product(matrix_t, grad_rows), b, c, hc, wc)
        if ctx.needs_input_grad[1]:  # <dL/dY_p, X_cell> at the entries of S; off-map candidates get 0
            sampled = torch.sparse.sampled_addmm(_csr(crow, col, values, b * hc * wc), grad_rows, points.t(),
                                                 beta=0.0).values()
            grad_assign = values.new_zeros(b * h * w * NUM_CANDIDATES).index_copy_(0, entries, sampled)
            grad_assign = grad_assign.view(b, h, w, NUM_CANDIDATES).permute(0, 3, 1, 2)
        return grad_x, grad_assign


def _sparse_path(x: Tensor) -> bool:
    """Whether :class:`_HCDecodeSparse` runs: eager on a CPU with MKL, in float32 / float64."""
    return (x.device.type == 'cpu' and x.dtype in (torch.float32, torch.float64)
            and torch.backends.mkl.is_available() and running_eagerly())


def hc_decode(x: Tensor, assign: Tensor) -> Tensor:
    """Cluster-based decoding (HCFormer Eq. 5): ``[B, C, ceil(H/2), ceil(W/2)]`` -> ``[B, C, H, W]``.

    Args:
        x: coarse map (e.g. mask logits), ``[B, C, Hc, Wc]``.
        assign: soft assignment of each fine pixel to its 9 candidate coarse cells, ``[B, 9, H, W]``
            (neighbour order ``k = 3 * (dy + 1) + (dx + 1)``), e.g. from :class:`HCClustering`.

    Returns:
        ``[B, C, H, W]``, ``y_p = sum_k A_kp x_{q(p) + o_k}``; channels-last strides on a CPU (the sparse
        product's natural layout, see the module docstring), NCHW elsewhere. Differentiable w.r.t. both
        inputs (first order; the backward saves only ``x`` and ``assign``).
    """
    if x.dim() != 4:
        raise ValueError(f'x must be [B, C, Hc, Wc], got {tuple(x.shape)}')
    check_assignment(assign, x.shape[-2:])
    if assign.shape[0] != x.shape[0]:
        raise ValueError(f'batch sizes differ: x {x.shape[0]}, assign {assign.shape[0]}')
    if assign.dtype != x.dtype:
        assign = assign.to(x.dtype)
    if _sparse_path(x):
        return _HCDecodeSparse.apply(x, assign)
    return _HCDecode.apply(x, assign)


def hc_decode_hierarchy(x: Tensor, assigns: Sequence[Tensor]) -> Tensor:
    """Decode ``x`` through a list of assignments ordered coarse-to-fine (e.g. ``[A_16<-32, A_8<-16, A_4<-8]``)."""
    for level, assign in enumerate(assigns):
        check_assignment(assign, x.shape[-2:], name=f'assigns[{level}]')
        x = hc_decode(x, assign)
    return x


def hc_parent_index(assign: Tensor) -> Tensor:
    """Hard assignment: flat index (``qy * Wc + qx``) of each fine pixel's arg-max candidate cell, ``[B, H, W]``.

    Off-map candidates are clamped onto the map (they never win when ``assign`` gives them weight 0)."""
    b, _, height, width = assign.shape
    hc, wc = hc_coarse_size(height, width)
    offsets = torch.tensor(HC_OFFSETS, device=assign.device)
    k = assign.argmax(1)
    qy = (torch.arange(height, device=k.device) // 2).view(1, height, 1) + offsets[k, 0]
    qx = (torch.arange(width, device=k.device) // 2).view(1, 1, width) + offsets[k, 1]
    return qy.clamp(0, hc - 1) * wc + qx.clamp(0, wc - 1)


def hc_partitions(assigns: Sequence[Tensor]) -> List[Tensor]:
    """The hierarchy of hard clusterings on the finest grid (for visualisation / undersegmentation error).

    ``assigns`` ordered coarse-to-fine (``[A_16<-32, A_8<-16, A_4<-8]``). Returns one ``[B, H, W]`` long map per
    assignment, on the fine grid of the last (finest) one: entry ``i`` labels every finest pixel with the cell
    of ``assigns[i]``'s coarse map it reaches by following the arg-max candidate at every level in between
    (entry 0: the top clusters, e.g. stride-32 cells; entry -1: the stride-8 cells). Decoding one-hot cluster
    indicators with one-hot assignments (Eq. 5) gives the same partitions.
    """
    parents = [hc_parent_index(a) for a in assigns]
    out: List[Tensor] = []
    label = None
    for parent in reversed(parents):
        # label indexes this level's fine grid (= the previous, finer level's coarse grid): map it up
        label = parent if label is None else torch.gather(parent.flatten(1), 1, label.flatten(1)).view_as(label)
        out.append(label)
    return out[::-1]
