"""DPC-kNN token clustering (density peaks clustering with k-nearest-neighbour density).

Equations (ClusTR paper Eqs. 1-2, after Rodriguez & Laio 2014; TCFormer's ``cluster_dpc_knn`` computes the same
quantities). For the tokens ``x_1..x_N`` of one sample, with distance ``d_ij = ||x_i - x_j||_2 / sqrt(C)``
(``dist_scale=True``, TCFormer) or ``||x_i - x_j||_2`` (``dist_scale=False``, the paper's Eq. 1):

* density ``rho_i = exp(-(1/k) * sum_{j in kNN_k(i)} d_ij^2)``, where ``kNN_k(i)`` are the ``k`` tokens closest to
  ``x_i`` **including** ``x_i`` itself (distance 0): the paper's set ``{j : d(x_i, x_j) <= d(x_i, x_k)}`` contains
  ``i``, and TCFormer takes the top-k of the full distance matrix. ``k`` is clipped to the number of (valid)
  tokens, so ``N = 1`` gives ``rho = 1``;
* ``delta_i = min_{j denser than i} d_ij`` (the minimiser is ``i``'s *parent*, the nearest denser token); for the
  densest token ``delta = max_j d_ij`` (its row maximum, paper Eq. 2);
* score ``gamma_i = rho_i * delta_i``; the ``M`` highest scores are the centres;
* ``assign='center'`` (default, TCFormer's code): every token joins its nearest centre; ``assign='parent'``
  (the paper's text, "the remaining tokens are assigned to the same cluster as their nearest tokens with higher
  density", and Rodriguez & Laio): every token joins the cluster of its parent, i.e. follows the chain of
  parents up to the first centre on it (if the chain ends at the densest token and that is not a centre, the
  densest token joins its nearest centre). In both modes a centre always joins its own cluster.

Deviations from TCFormer's ``cluster_dpc_knn`` and the switches (details in ``docs/clustr.md``):

* the densest token's ``delta``: the paper's Eq. 2 takes its row maximum ``max_j d_ij``, TCFormer's code the
  largest distance of the whole sample. Both give the same result, so there is no switch: every other token has
  ``rho_i <= rho_max`` and ``delta_i <= d(i, densest) <= max_j d(densest, j)``, so its score never exceeds the
  densest token's under either definition, and on equality the densest token wins the tie (it has the lowest
  index among the tokens of maximal density). The densest token is therefore always the first centre (cluster
  0); the code gives it score ``+inf`` directly instead of computing its row maximum;
* no random tie-breaking noise (TCFormer adds ``U(0, 1) * 1e-6`` to the density): ties are broken
  deterministically (below). Where no two densities (or scores) lie within about ``1e-6`` of each other the two
  agree, and TCFormer's result does not depend on its random seed; no switch (a random result cannot be
  reproduced or tested);
* padded tokens (``token_mask``): TCFormer sets their distances to ``max(D) + 1`` of the whole *batch*, so every
  padded token joins cluster 0 (all centres are equally far from it); here masked tokens are nobody's
  neighbour and join their nearest centre (give them zero weight in :func:`merge_tokens`). No switch (a padding
  artefact);
* ``k`` larger than the number of tokens: TCFormer's ``topk`` raises, here ``k`` is clipped;
* ``rho`` and ``gamma`` compared in log space (below): the same order as the products unless they underflow.

Deterministic tie-breaking:

* *"j is denser than i"* means ``rho_j > rho_i or (rho_j == rho_i and j < i)`` -- a total order, so exactly one
  token per sample is the densest;
* a token's parent is the nearest denser token, ties going to the lower token index;
* the top-``M`` scores are taken with ties going to the lower token index (stable sort); ``centers`` lists them
  in descending score (cluster id ``m`` = rank ``m``, the numbering of TCFormer's ``idx_cluster``);
* a token equidistant from several centres joins the centre of lowest rank ``m``.

Numerics:

* ``rho`` and ``gamma`` are compared in log space (``log rho = -mean d^2``, ``log gamma = log rho + log delta``),
  which orders them exactly as the products do but cannot underflow (``exp(-mean d^2)`` is 0 in float32 once
  the mean squared distance exceeds ~100, e.g. with ``dist_scale=False``).
* Candidates are ranked by the fast expansion ``|x_j|^2 - 2 x_i.x_j`` (the squared distance less the row's own
  constant ``|x_i|^2``; one matrix product per block, ``[x_i, 1] . [-2 x_j, |x_j|^2]``), whose rounding depends
  on the block shape. Every value that enters a decision is then **recomputed
  exactly** as ``sum_c (x_ic - x_jc)^2``: the ``k'`` nearest-neighbour distances of the density, the distances to
  the few nearest denser tokens and the distances to the few nearest centres. These are symmetric and give
  exactly 0 between duplicated tokens, so exact ties (duplicated tokens, mutual nearest neighbours) are broken
  by the rules above and the result does not depend on ``chunk_size``. (Only near-ties below the expansion's
  rounding at a candidate boundary could differ, e.g. more than ``k'`` duplicates of a token.)
* Features are centred per sample before the fast expansion; everything runs under ``torch.no_grad()`` with
  autocast disabled, in float32 (float64 inputs stay float64): the assignment is not differentiable, gradients
  reach a model only through :func:`merge_tokens`.

Memory: no ``N x N`` matrix is materialised. Pass 1 computes distance rows in blocks ``[B, chunk, N]`` and keeps
the ``k' = max(k, 16)`` nearest candidates per row. The nearest denser token is usually among them: if any kept
neighbour is denser, the nearest kept denser one is the nearest denser token (every token closer than the
``k'``-th neighbour is kept). Only rows without a denser kept neighbour (local density peaks, a few percent)
get a second, full-row pass (all samples of the batch in the same blocks, no per-sample loop). The assignment
to the ``M`` centres is chunked ``[B, chunk, M]``. The default chunk keeps one block at about ``2**22``
elements (16 MiB in float32), see :func:`default_chunk_size`; the exact recomputation runs in cache-sized blocks.
:func:`dpc_knn_dense` is the plain dense ``N x N`` form (same maths and tie rules, no exact recomputation).

Several reduction ratios of one layer share the density and scores (they do not depend on ``M``):
:func:`dpc_knn_multi` computes them once and assigns for each ``M``.
"""
from typing import List, Optional, Sequence, Tuple

import torch

# Candidates kept per row in pass 1 (density and nearest-denser shortcut); at least ``k``.
_NUM_KEEP = 16
# Nearest centres (nearest denser tokens in pass 2b) whose distance is recomputed exactly.
_NUM_CENTER_CAND = 4
# Elements of one distance block with the default chunk size.
_CHUNK_ELEMS = 2**22
# Elements of one block of the exact recomputation (gathered features; about 1 MiB in float32).
_EXACT_ELEMS = 2**18

ASSIGN_MODES = ('center', 'parent')

__all__ = ['dpc_knn', 'dpc_knn_multi', 'dpc_knn_dense', 'merge_tokens', 'cluster_softmax_weights',
           'default_chunk_size', 'ASSIGN_MODES']


def default_chunk_size(batch: int, num_rows: int, num_cols: int, budget: int = _CHUNK_ELEMS) -> int:
    """Rows per chunk so that a ``[batch, chunk, num_cols]`` block holds about ``budget`` elements."""
    return int(max(1, min(num_rows, budget // max(1, batch * num_cols))))


def check_assign(assign: str) -> None:
    """Raise ``ValueError`` naming the valid choices for an unknown ``assign``."""
    if assign not in ASSIGN_MODES:
        raise ValueError(f'dpc_knn: assign must be one of {ASSIGN_MODES}, got {assign!r}')


def _validate(x: torch.Tensor, k: int, token_mask: Optional[torch.Tensor],
              chunk_size: Optional[int]) -> Optional[torch.Tensor]:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f'dpc_knn: x must be a torch.Tensor of shape [B, N, C], got {type(x).__name__}')
    if x.dim() != 3:
        raise ValueError(f'dpc_knn: x must have shape [B, N, C], got {tuple(x.shape)}')
    if not x.is_floating_point():
        raise ValueError(f'dpc_knn: x must be a floating-point tensor, got dtype {x.dtype}')
    B, N, C = x.shape
    if B < 1 or N < 1 or C < 1:
        raise ValueError(f'dpc_knn: x must be a non-empty [B, N, C] tensor, got {tuple(x.shape)}')
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f'dpc_knn: k must be an int >= 1, got {k!r}')
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                   or chunk_size < 1):
        raise ValueError(f'dpc_knn: chunk_size must be None or an int >= 1, got {chunk_size!r}')
    if not bool(torch.isfinite(x).all()):
        raise ValueError('dpc_knn: x contains NaN or Inf values')
    if token_mask is None:
        return None
    if not isinstance(token_mask, torch.Tensor) or tuple(token_mask.shape) != (B, N):
        got = tuple(token_mask.shape) if isinstance(token_mask, torch.Tensor) else type(token_mask).__name__
        raise ValueError(f'dpc_knn: token_mask must be a [B, N] = {(B, N)} tensor (True = valid), got {got}')
    valid = token_mask.to(device=x.device, dtype=torch.bool)
    if not bool(valid.any(dim=1).all()):
        raise ValueError('dpc_knn: token_mask leaves a sample without any valid token')
    return valid


def _check_num_clusters(num_clusters: int, N: int) -> int:
    if isinstance(num_clusters, bool) or not isinstance(num_clusters, int):
        raise ValueError(f'dpc_knn: num_clusters must be an int, got {num_clusters!r}')
    if not 1 <= num_clusters <= N:
        raise ValueError(f'dpc_knn: num_clusters must satisfy 1 <= num_clusters <= N = {N}, got {num_clusters}')
    return num_clusters


def _prepare(x: torch.Tensor, valid: Optional[torch.Tensor]):
    """``(xw, xc, sq)``: features in the work dtype (for exact distances), centred per sample (for the fast
    expansion, which loses less to cancellation on centred data) and the squared norms of the latter."""
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    xw = x.detach().to(dtype).contiguous()
    if valid is None:
        mean = xw.mean(dim=1, keepdim=True)
    else:
        vf = valid.to(dtype).unsqueeze(-1)
        mean = (xw * vf).sum(dim=1, keepdim=True) / vf.sum(dim=1, keepdim=True)
    xc = (xw - mean).contiguous()
    sq = (xc * xc).sum(dim=-1)
    return xw, xc, sq


def _sq_dist(xr: torch.Tensor, sqr: torch.Tensor, xs: torch.Tensor, sq: torch.Tensor,
             clamp: bool = False) -> torch.Tensor:
    """Fast (expansion) squared distances ``[B, R, N']`` between rows ``xr [B, R, C]`` and ``xs [B, N', C]``.

    Only used to select candidates (whose distances are then recomputed exactly), so the small negative values
    of the rounding are left unclamped unless ``clamp``.
    """
    d2 = sqr.unsqueeze(2) + sq.unsqueeze(1)
    d2.baddbmm_(xr, xs.transpose(1, 2), alpha=-2.0)
    return d2.clamp_(min=0) if clamp else d2


def _rank_operands(xc: torch.Tensor, sq: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(rows, cols)`` ``[B, N, C + 1]`` with ``rows_i . cols_j = |x_j|^2 - 2 x_i.x_j``: row ``i``'s squared
    distances up to its own constant ``|x_i|^2``, which orders each row exactly as the distances do.

    Candidate selection needs only that order, so one matrix product (``[x_i, 1] . [-2 x_j, |x_j|^2]``) gives a
    block with no further pass over it (the expansion ``|x_i|^2 + |x_j|^2 - 2 x_i.x_j`` costs two more passes
    over the block, which is memory-bound).
    """
    rows = torch.cat([xc, torch.ones_like(sq).unsqueeze(-1)], dim=-1)
    cols = torch.cat([xc * -2.0, sq.unsqueeze(-1)], dim=-1)
    return rows, cols


def _row_ranked_d2(rows: torch.Tensor, cols: torch.Tensor, buffer: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``[B, R, N']``: squared distances of every row up to a per-row constant (see :func:`_rank_operands`).

    ``buffer``: a flat tensor of at least ``B * R * N'`` elements to write the block into. The blocks of one
    pass reuse it: a freshly allocated block (megabytes) made the product about 3x slower than one written
    into memory the previous block left in the cache.
    """
    if buffer is None:
        return torch.bmm(rows, cols.transpose(1, 2))
    B, R, _ = rows.shape
    out = buffer[:B * R * cols.shape[1]].view(B, R, cols.shape[1])
    return torch.bmm(rows, cols.transpose(1, 2), out=out)


def _block_buffer(batch: int, rows: int, cols: int, like: torch.Tensor) -> Optional[torch.Tensor]:
    """A flat buffer for the ``[batch, rows, cols]`` distance blocks of one pass (:func:`_row_ranked_d2`);
    None (a fresh tensor per block) for tracers and compilers, which record ``out=`` products badly."""
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return None
    return torch.empty(batch * rows * cols, device=like.device, dtype=like.dtype)


def _k_smallest(d2: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(values, indices)`` of the ``k`` smallest entries of every row of ``d2 [B, R, N]`` (unsorted), as
    ``torch.topk(d2, k, largest=False, sorted=False)`` (the same values; on ties possibly other indices).

    ``topk`` runs a selection over every full row, which dominated DPC-kNN's time at N = 3136. For long rows
    the selection runs twice on short rows instead: the columns are split into ``G`` strided groups (column
    ``j`` in group ``j mod G``), each group's minimum is taken (a vectorised reduction), and only the members of
    the ``k`` groups with the smallest minima (plus the columns left over by the split) are searched. That
    keeps every one of the ``k`` smallest values: an entry outside those groups has ``k`` group minima at or
    below it.
    """
    if torch.jit.is_tracing():  # sizes are tensors there; one topk is also the simpler exported graph
        return torch.topk(d2, k, dim=-1, largest=False, sorted=False)
    B, R, N = d2.shape
    group = max(2, round((N / k) ** 0.5))  # balances the two selections (G and k * group entries)
    num_groups = N // group
    if num_groups <= k or k * group >= N // 2:
        return torch.topk(d2, k, dim=-1, largest=False, sorted=False)
    split = num_groups * group
    mins = d2[..., :split].view(B, R, group, num_groups).amin(dim=2)
    best_groups = torch.topk(mins, k, dim=-1, largest=False, sorted=False).indices  # [B, R, k]
    members = torch.arange(group, device=d2.device) * num_groups
    cand = (best_groups.unsqueeze(-1) + members).view(B, R, k * group)
    if split < N:
        rest = torch.arange(split, N, device=d2.device).expand(B, R, N - split)
        cand = torch.cat([cand, rest], dim=-1)
    values, sel = torch.topk(torch.gather(d2, 2, cand), k, dim=-1, largest=False, sorted=False)
    return values, torch.gather(cand, 2, sel)


def _exact_d2(xr: torch.Tensor, xs: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """Exact ``sum_c (x_r - x_j)^2`` for rows ``xr [B, R, C]`` and candidates ``cand [B, R, T]`` into ``xs``.

    Memory-bound (gather, subtract, square, sum), so it runs in row blocks of about ``_EXACT_ELEMS`` elements
    (cache-sized) with in-place arithmetic; each value is the same sum in the same order whatever the block.
    """
    B, R, T = cand.shape
    C = xs.shape[-1]
    out = torch.empty(B, R, T, device=xs.device, dtype=xs.dtype)
    step = max(1, _EXACT_ELEMS // max(1, B * T * C))
    for r0 in range(0, R, step):
        c = cand[:, r0:r0 + step]
        r = c.shape[1]
        xj = _gather_rows(xs, c.reshape(B, r * T)).view(B, r, T, C)
        xj.sub_(xr[:, r0:r0 + step].unsqueeze(2)).square_()
        out[:, r0:r0 + step] = xj.sum(dim=-1)
    return out


def _gather_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x [B, N, C]`` rows ``idx [B, R]`` -> ``[B, R, C]`` (whole-row copies: several times faster than
    ``torch.gather`` with an index expanded over the channels)."""
    B, N, C = x.shape
    flat = (idx + torch.arange(B, device=idx.device).view(B, 1) * N).reshape(-1)
    return x.reshape(B * N, C).index_select(0, flat).view(B, idx.shape[1], C)


def _scores(x: torch.Tensor, k: int, valid: Optional[torch.Tensor], dist_scale: bool,
            chunk_size: Optional[int]):
    """``(xw, xc, sq, log_gamma, parent)``: prepared features (see :func:`_prepare`), every token's log-score and
    its parent (nearest denser token; ``N`` for the densest token and masked tokens without one)."""
    B, N, C = x.shape
    xw, xc, sq = _prepare(x, valid)
    dev, dt = xw.device, xw.dtype
    inv_c = 1.0 / C if dist_scale else 1.0  # d^2 = |x_i - x_j|^2 / C
    inf = float('inf')
    n_valid = valid.sum(dim=1) if valid is not None else torch.full((B, ), N, device=dev, dtype=torch.long)
    k_eff = torch.clamp(n_valid, max=k)  # [B], >= 1
    k_top = min(k, N)
    k_keep = min(max(k, _NUM_KEEP), N)
    chunk = chunk_size or min(default_chunk_size(B, N, N), default_chunk_size(B, N, k_keep * C))
    # pass 1: k' nearest candidates per row from the fast distances, then their exact distances (sorted)
    nn_d2 = torch.empty(B, N, k_keep, device=dev, dtype=dt)
    nn_idx = torch.empty(B, N, k_keep, device=dev, dtype=torch.long)
    rows_op, cols_op = _rank_operands(xc, sq)
    buffer = _block_buffer(B, min(chunk, N), N, xw)
    for r0 in range(0, N, chunk):
        r1 = min(N, r0 + chunk)
        d2 = _row_ranked_d2(rows_op[:, r0:r1], cols_op, buffer)
        ar = torch.arange(r1 - r0, device=dev)
        d2[:, ar, ar + r0] = -inf  # self is always a candidate
        if valid is not None:
            d2.masked_fill_(~valid.unsqueeze(1), inf)
        cand = _k_smallest(d2, k_keep)[1]
        del d2
        ex = _exact_d2(xw[:, r0:r1], xw, cand)
        if valid is not None:
            ex.masked_fill_(~torch.gather(valid, 1, cand.view(B, -1)).view_as(cand), inf)
        ex, order = torch.sort(ex, dim=-1, stable=True)
        nn_d2[:, r0:r1] = ex
        nn_idx[:, r0:r1] = torch.gather(cand, 2, order)
    keep = torch.arange(k_top, device=dev).view(1, 1, -1) < k_eff.view(-1, 1, 1)
    knn_sum = torch.where(keep, nn_d2[..., :k_top], torch.zeros((), device=dev, dtype=dt)).sum(-1)
    log_rho = -(knn_sum / k_eff.view(-1, 1).to(dt)) * inv_c
    if valid is not None:
        log_rho = log_rho.masked_fill(~valid, -inf)
    # total density order: higher log_rho first, ties by lower index (stable sort)
    order = torch.sort(-log_rho, dim=1, stable=True).indices
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(N, device=dev).expand(B, N))
    # pass 2a: nearest denser token among the kept neighbours (exact distances; ties -> lower index)
    denser = torch.gather(rank, 1, nn_idx.view(B, -1)).view(B, N, k_keep) < rank.unsqueeze(-1)
    d2_denser = torch.where(denser, nn_d2, torch.full((), inf, device=dev, dtype=dt))
    delta2 = d2_denser.min(dim=-1).values
    parent = torch.where(denser & (d2_denser == delta2.unsqueeze(-1)), nn_idx, N).min(dim=-1).values
    need = ~denser.any(dim=-1)
    if valid is not None:
        need &= valid
    # the densest token has no parent and the largest score whatever its delta (module docstring): no row pass
    densest = order[:, :1]  # [B, 1]
    # tensor sources, not Python scalars: under jit tracing (tools/get_flops.py, ONNX export) N is a 0-dim
    # tensor that scatter_ takes for a source of the wrong rank, and a bool scalar has no traced overload
    need.scatter_(1, densest, torch.zeros_like(densest, dtype=torch.bool))
    parent.scatter_(1, densest, torch.full_like(densest, N))
    # pass 2b: full rows for the tokens without a denser kept neighbour (local density peaks), all samples at
    # once: each sample's rows that need it come first in ``rows [B, R]``; padding rows (other tokens, so the
    # indices of a sample stay distinct) are computed and written back unchanged
    counts = need.sum(dim=1)
    # a traced graph (ONNX export, torch.jit.trace) must hold for every input of its size, not only for the
    # number of peaks of the example: take every row then (the padding rows are written back unchanged)
    num_rows = N if torch.jit.is_tracing() else int(counts.max())
    if num_rows > 0:
        rows = torch.sort((~need).to(torch.uint8), dim=1, stable=True).indices[:, :num_rows]
        live = torch.arange(num_rows, device=dev).unsqueeze(0) < counts.unsqueeze(1)
        chunk_b = chunk_size or default_chunk_size(B, num_rows, N)
        t = min(_NUM_CENTER_CAND, N)
        buffer = _block_buffer(B, min(chunk_b, num_rows), N, xw)
        for r0 in range(0, num_rows, chunk_b):
            rr = rows[:, r0:r0 + chunk_b]
            d2 = _row_ranked_d2(_gather_rows(rows_op, rr), cols_op, buffer)  # [B, r, N]
            d2.masked_fill_(rank.unsqueeze(1) >= torch.gather(rank, 1, rr).unsqueeze(2), inf)
            fast, cand = _k_smallest(d2, t)
            del d2
            ex = _exact_d2(_gather_rows(xw, rr), xw, cand)
            ex.masked_fill_(torch.isinf(fast), inf)  # fewer than t denser tokens
            best = ex.min(dim=-1, keepdim=True).values
            par = torch.where(ex == best, cand, N).min(dim=-1).values
            lv = live[:, r0:r0 + chunk_b]
            delta2.scatter_(1, rr, torch.where(lv, best[..., 0], torch.gather(delta2, 1, rr)))
            parent.scatter_(1, rr, torch.where(lv, par, torch.gather(parent, 1, rr)))
    log_gamma = log_rho + 0.5 * torch.log(delta2 * inv_c)
    log_gamma.scatter_(1, densest, inf)
    if valid is not None:
        log_gamma = log_gamma.masked_fill(~valid, -inf)
    return xw, xc, sq, log_gamma, parent


def _score_order(log_gamma: torch.Tensor, valid: Optional[torch.Tensor]) -> torch.Tensor:
    """Token indices by descending score, ties by lower index; masked tokens after all valid ones."""
    order = torch.sort(-log_gamma, dim=1, stable=True).indices
    if valid is not None:  # a second stable sort makes validity the primary key
        order = torch.gather(order, 1, torch.sort((~torch.gather(valid, 1, order)).to(torch.uint8), dim=1,
                                                  stable=True).indices)
    return order


def _assign(xw: torch.Tensor, xc: torch.Tensor, sq: torch.Tensor, centers: torch.Tensor,
            chunk_size: Optional[int]) -> torch.Tensor:
    """Nearest centre of every token (lowest rank on exact ties); centres join their own cluster."""
    B, N, C = xw.shape
    M = centers.shape[1]
    cw = _gather_rows(xw, centers)
    rows_op, cols_op = _rank_operands(xc, sq)
    cols_op = _gather_rows(cols_op, centers)
    t = min(_NUM_CENTER_CAND, M)
    chunk = chunk_size or min(default_chunk_size(B, N, M), default_chunk_size(B, N, t * C))
    idx = torch.empty(B, N, device=xw.device, dtype=torch.long)
    buffer = _block_buffer(B, min(chunk, N), M, xw)
    for r0 in range(0, N, chunk):
        r1 = min(N, r0 + chunk)
        d2 = _row_ranked_d2(rows_op[:, r0:r1], cols_op, buffer)
        cand = _k_smallest(d2, t)[1]
        del d2
        ex = _exact_d2(xw[:, r0:r1], cw, cand)
        best = ex.min(dim=-1, keepdim=True).values
        idx[:, r0:r1] = torch.where(ex == best, cand, M).min(dim=-1).values
    idx.scatter_(1, centers, torch.arange(M, device=xw.device).expand(B, M))
    return idx


def _follow_parents(parent: torch.Tensor, centers: torch.Tensor, idx_center: torch.Tensor) -> torch.Tensor:
    """Cluster of every token by the chain of parents (``assign='parent'``).

    ``parent [B, N]`` (``N`` = none), ``centers [B, M]``, ``idx_center [B, N]`` the nearest-centre assignment
    (used for a chain's root that is not a centre: the densest token). Parents are strictly denser, so the
    parent graph is a forest; pointer jumping finds every token's first centre (or root) in ``O(log N)`` steps.
    """
    B, N = parent.shape
    M = centers.shape[1]
    ar = torch.arange(N, device=parent.device).expand(B, N)
    is_center = torch.zeros(B, N, dtype=torch.bool, device=parent.device).scatter_(1, centers, True)
    ptr = torch.where(is_center | (parent >= N), ar, parent)
    for _ in range(N.bit_length() + 1):
        nxt = torch.gather(ptr, 1, ptr)
        if torch.equal(nxt, ptr):
            break
        ptr = nxt
    cid = torch.zeros(B, N, dtype=torch.long, device=parent.device)
    cid.scatter_(1, centers, torch.arange(M, device=parent.device).expand(B, M))
    return torch.where(torch.gather(is_center, 1, ptr), torch.gather(cid, 1, ptr), torch.gather(idx_center, 1, ptr))


@torch.no_grad()
def dpc_knn_multi(x: torch.Tensor,
                  num_clusters: Sequence[int],
                  k: int = 5,
                  token_mask: Optional[torch.Tensor] = None,
                  dist_scale: bool = True,
                  chunk_size: Optional[int] = None,
                  assign: str = 'center') -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """:func:`dpc_knn` for several numbers of clusters, sharing one density / score computation.

    Returns one ``(idx_cluster, centers)`` pair per entry of ``num_clusters`` (the centres of a smaller ``M``
    are a prefix of those of a larger one).
    """
    valid = _validate(x, k, token_mask, chunk_size)
    check_assign(assign)
    ms = [_check_num_clusters(m, x.shape[1]) for m in num_clusters]
    with torch.autocast(device_type=x.device.type, enabled=False):
        xw, xc, sq, log_gamma, parent = _scores(x, k, valid, dist_scale, chunk_size)
        order = _score_order(log_gamma, valid)
        out = []
        for m in ms:
            centers = order[:, :m].contiguous()
            idx = _assign(xw, xc, sq, centers, chunk_size)
            if assign == 'parent':
                idx = _follow_parents(parent, centers, idx)
            out.append((idx, centers))
    return out


@torch.no_grad()
def dpc_knn(x: torch.Tensor,
            num_clusters: int,
            k: int = 5,
            token_mask: Optional[torch.Tensor] = None,
            dist_scale: bool = True,
            chunk_size: Optional[int] = None,
            assign: str = 'center') -> Tuple[torch.Tensor, torch.Tensor]:
    """Cluster tokens with DPC-kNN (see the module docstring for the exact definition and tie rules).

    With the defaults this reproduces TCFormer's official ``cluster_dpc_knn`` (stored-output test); deviations
    from it (module docstring, ``docs/clustr.md``): deterministic tie-breaking instead of ``1e-6`` noise, padded
    tokens joined to their nearest centre instead of cluster 0, ``k`` clipped to the number of tokens.
    ``assign='parent'`` gives the paper's assignment (nearest denser token) instead of TCFormer's nearest centre.

    Args:
        x: tokens ``[B, N, C]`` (any float dtype; computed in float32, float64 stays float64).
        num_clusters: ``M`` with ``1 <= M <= N``.
        k: neighbours of the density (``>= 1``; self included; clipped to the number of valid tokens).
        token_mask: optional ``[B, N]`` bool, True = valid token. Masked tokens are nobody's neighbour, have
            density 0 (below every valid token) and score ``-inf`` (so they become centres only when a sample has
            fewer than ``M`` valid tokens, then by lowest index); they are still assigned to their nearest
            centre (give them zero weight in :func:`merge_tokens`). Every sample needs a valid token.
        dist_scale: divide distances by ``sqrt(C)`` (TCFormer) or not (paper Eq. 1).
        chunk_size: rows per distance block; default :func:`default_chunk_size` (about ``2**22`` elements).
        assign: ``'center'`` (TCFormer's code: nearest centre) or ``'parent'`` (paper text: the cluster of the
            nearest denser token).

    Returns:
        ``idx_cluster`` ``[B, N]`` long in ``[0, M)`` and ``centers`` ``[B, M]`` long token indices in descending
        score order, with ``idx_cluster[b, centers[b, m]] == m``.

    Raises:
        ValueError: on a non-float / non-``[B, N, C]`` / non-finite ``x``, ``num_clusters`` outside ``[1, N]``,
        ``k < 1``, a bad ``chunk_size`` or ``token_mask``, an unknown ``assign``.
    """
    return dpc_knn_multi(x, [num_clusters], k, token_mask, dist_scale, chunk_size, assign)[0]


@torch.no_grad()
def dpc_knn_dense(x: torch.Tensor,
                  num_clusters: int,
                  k: int = 5,
                  token_mask: Optional[torch.Tensor] = None,
                  dist_scale: bool = True,
                  assign: str = 'center') -> Tuple[torch.Tensor, torch.Tensor]:
    """The plain dense form: one ``[B, N, N]`` distance matrix (O(N^2) memory), same maths and tie rules.

    Without the exact recomputation of :func:`dpc_knn`, so the two agree except on exact ties (duplicated
    tokens), where the rounding of the expansion decides here. Baseline of
    ``tools/benchmark/dpc_knn_memory.py``.
    """
    valid = _validate(x, k, token_mask, None)
    check_assign(assign)
    B, N, _ = x.shape
    M = _check_num_clusters(num_clusters, N)
    with torch.autocast(device_type=x.device.type, enabled=False):
        _, xc, sq = _prepare(x, valid)
        dev, dt = xc.device, xc.dtype
        inv_c = 1.0 / x.shape[-1] if dist_scale else 1.0
        inf = float('inf')
        d2 = _sq_dist(xc, sq, xc, sq, clamp=True)
        ar = torch.arange(N, device=dev)
        d2[:, ar, ar] = 0
        n_valid = valid.sum(1) if valid is not None else torch.full((B, ), N, device=dev)
        k_eff = n_valid.clamp(max=k)
        knn = d2.masked_fill(~valid.unsqueeze(1), inf) if valid is not None else d2
        vals = torch.topk(knn, min(k, N), dim=-1, largest=False, sorted=True).values
        del knn
        keep = torch.arange(vals.shape[-1], device=dev).view(1, 1, -1) < k_eff.view(-1, 1, 1)
        knn_sum = torch.where(keep, vals, torch.zeros((), device=dev, dtype=dt)).sum(-1)
        log_rho = -(knn_sum / k_eff.view(-1, 1).to(dt)) * inv_c
        if valid is not None:
            log_rho = log_rho.masked_fill(~valid, -inf)
        order = torch.sort(-log_rho, dim=1, stable=True).indices
        rank = torch.empty_like(order).scatter_(1, order, ar.expand(B, N))
        dmax = (d2.masked_fill(~valid.unsqueeze(1), -inf) if valid is not None else d2).max(-1).values
        dmin_all = d2.masked_fill_(rank.unsqueeze(1) >= rank.unsqueeze(2), inf)  # [b, i, j]: j not denser
        dmin = dmin_all.min(-1).values
        if assign == 'parent':
            parent = torch.where(dmin_all == dmin.unsqueeze(-1), ar.view(1, 1, N), N).min(-1).values
            parent = torch.where(torch.isinf(dmin), N, parent)
        delta2 = torch.where(rank == 0, dmax, dmin)
        del d2, dmin_all
        log_gamma = log_rho + 0.5 * torch.log(delta2 * inv_c)
        if valid is not None:
            log_gamma = log_gamma.masked_fill(~valid, -inf)
        centers = _score_order(log_gamma, valid)[:, :M]
        idx = _sq_dist(xc, sq, _gather_rows(xc, centers), torch.gather(sq, 1, centers), clamp=True).argmin(dim=-1)
        idx.scatter_(1, centers, torch.arange(M, device=dev).expand(B, M))
        if assign == 'parent':
            idx = _follow_parents(parent, centers, idx)
    return idx, centers


def merge_tokens(x: torch.Tensor,
                 idx_cluster: torch.Tensor,
                 num_clusters: int,
                 weight: Optional[torch.Tensor] = None,
                 eps: float = 1e-6) -> torch.Tensor:
    """Weighted mean of the tokens of each cluster: ``x_m = sum_i w_i x_i / (sum_i w_i + eps)``.

    Args:
        x: ``[B, N, C]``.
        idx_cluster: ``[B, N]`` long in ``[0, num_clusters)``.
        num_clusters: ``M``.
        weight: ``[B, N]`` or ``[B, N, 1]`` non-negative weights (unit weights if None).
        eps: added to the denominator (an empty or zero-weight cluster gives a zero token).

    Returns:
        ``[B, M, C]``, differentiable w.r.t. ``x`` and ``weight`` (``index_add``). Half / bfloat16 inputs are
        accumulated in float32 and returned in their dtype.
    """
    if x.dim() != 3:
        raise ValueError(f'merge_tokens: x must be [B, N, C], got {tuple(x.shape)}')
    B, N, C = x.shape
    if tuple(idx_cluster.shape) != (B, N):
        raise ValueError(f'merge_tokens: idx_cluster must be [B, N] = {(B, N)}, got {tuple(idx_cluster.shape)}')
    out_dtype = x.dtype if weight is None else torch.promote_types(x.dtype, weight.dtype)
    work = torch.float32 if out_dtype in (torch.float16, torch.bfloat16) else out_dtype
    xw = x.to(work)
    if weight is None:
        w = torch.ones(B, N, device=x.device, dtype=work)
    else:
        if weight.dim() == 3:
            weight = weight.squeeze(-1)
        if tuple(weight.shape) != (B, N):
            raise ValueError(f'merge_tokens: weight must be [B, N] or [B, N, 1], got {tuple(weight.shape)}')
        w = weight.to(work)
    flat = (idx_cluster + torch.arange(B, device=x.device).unsqueeze(1) * num_clusters).reshape(-1)
    num = xw.new_zeros(B * num_clusters, C).index_add(0, flat, (xw * w.unsqueeze(-1)).reshape(B * N, C))
    den = w.new_zeros(B * num_clusters).index_add(0, flat, w.reshape(-1))
    out = num / (den.unsqueeze(-1) + eps)
    return out.view(B, num_clusters, C).to(out_dtype)


def cluster_softmax_weights(scores: torch.Tensor, idx_cluster: torch.Tensor, num_clusters: int) -> torch.Tensor:
    """Token weights ``w_i = exp(s_i - max_{j in G(i)} s_j)`` for :func:`merge_tokens`.

    The merge normalises within each cluster, so subtracting the (detached) per-cluster maximum changes nothing
    but the ``eps`` term while keeping ``exp`` finite and every cluster's weight sum ``>= 1``: the merge is then a
    softmax over the cluster's scores (TCFormer's ``w = exp(s)`` without its overflow / underflow risk).
    ``scores`` ``[B, N]``; returns ``[B, N]`` in the scores' dtype (float32 for half inputs).
    """
    B, N = scores.shape
    s = scores.float() if scores.dtype in (torch.float16, torch.bfloat16) else scores
    sd = s.detach()
    cmax = sd.new_full((B, num_clusters), float('-inf')).scatter_reduce(1, idx_cluster, sd, reduce='amax')
    return torch.exp(s - torch.gather(cmax, 1, idx_cluster))
