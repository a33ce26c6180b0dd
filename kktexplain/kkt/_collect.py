"""Selection's gradient pass: the per-sample gradients of a range of rows, optionally sketched.

For large models the gradients are projected to ``K`` dimensions, with a CountSketch (a sparse
Johnson-Lindenstrauss map on the materialised gradients, ``O(P)`` per sample instead of the
``O(PK)`` of a dense Gaussian projection) or a :class:`~kktexplain.kkt.KroneckerSketch` (layer
by layer, without forming them). The solve is in :mod:`kktexplain.kkt._selection`.
"""

from __future__ import annotations

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ._columns import GradientFile
from ._functional import FunctionalModel
from ._grads import LossFn, iter_per_sample_grads
from ._kronecker import KroneckerSketch

__all__ = ["AUTO_SKETCH_DIM", "EXACT_MAX_ENTRIES", "CountSketch", "auto_sketch_dim", "collect_gradients"]

#: Per-sample gradients are kept exact while the matrix takes at most this many floats (1 GiB in
#: float32) ...
EXACT_MAX_ENTRIES = 2.5e8
#: ... and sketched with a CountSketch to this many columns beyond.
AUTO_SKETCH_DIM = 8192


def auto_sketch_dim(n_rows: int, num_params: int) -> int | None:
    """The sketch width for ``n_rows`` per-sample gradients of ``num_params`` coordinates.

    Parameters
    ----------
    n_rows : int
    num_params : int

    Returns
    -------
    int or None
        ``None`` (keep them exact) while ``n_rows * num_params <= EXACT_MAX_ENTRIES``, else
        ``min(AUTO_SKETCH_DIM, num_params)`` (a width equal to ``num_params`` needs no sketch).
    """
    return None if n_rows * num_params <= EXACT_MAX_ENTRIES else min(AUTO_SKETCH_DIM, num_params)


class CountSketch:
    """Sparse random projection ``R^P -> R^K``: coordinate ``p`` goes to bucket ``h(p)`` with sign ``s(p)``.

    Parameters
    ----------
    in_features : int
        ``P``.
    out_features : int
        ``K``.
    seed : int, default=0
    device : torch.device, optional

    Notes
    -----
    Inner products are preserved in expectation: ``E[<Sx, Sy>] = <x, y>``.
    """

    def __init__(self, in_features: int, out_features: int, seed: int = 0, device=None) -> None:
        if out_features < 1 or in_features < 1:
            raise ValueError("in_features and out_features must be positive")
        gen = torch.Generator().manual_seed(seed)
        self.in_features, self.out_features = in_features, out_features
        self.bucket = torch.randint(out_features, (in_features,), generator=gen).to(device)
        self.sign = (torch.randint(2, (in_features,), generator=gen) * 2 - 1).to(device)

    def __call__(self, x: Tensor) -> Tensor:
        """Project ``x`` of shape ``(..., P)`` to ``(..., K)``."""
        if x.shape[-1] != self.in_features:
            raise ValueError(f"expected {self.in_features} features, got {x.shape[-1]}")
        flat = x.reshape(-1, self.in_features)
        out = flat.new_zeros(flat.shape[0], self.out_features)
        out.index_add_(1, self.bucket.to(x.device), flat * self.sign.to(x.device, x.dtype))
        return out.reshape(*x.shape[:-1], self.out_features)


def collect_gradients(
    fmodel: FunctionalModel,
    inputs: Tensor,
    labels: Tensor,
    loss_fn: LossFn,
    chunk_size: int = 256,
    sketch: CountSketch | None = None,
    rows: tuple[int, int] | None = None,
    progress: bool = False,
    return_logits: bool = False,
    out: GradientFile | None = None,
) -> Tensor | GradientFile | tuple[Tensor | GradientFile, Tensor | None]:
    """The flattened (optionally sketched) per-sample gradients of a range of rows, on the CPU.

    This is the unit of work of selection: one process computes the rows ``[start, stop)``
    and the solve needs only the stacked result. Every process must use a sketch built with the
    same seed.

    Parameters
    ----------
    fmodel : FunctionalModel
    inputs : Tensor of shape (N, *input_shape)
        May live on the CPU; chunks go to the model's device.
    labels : Tensor of shape (N,) or (N, C)
    loss_fn : callable
        Per-sample loss ``(logits, labels) -> (n,)``.
    chunk_size : int, default=256
        Samples per vmapped per-sample-gradient call (bounds memory).
    sketch : CountSketch or KroneckerSketch, optional
        Projects every chunk from ``P`` to ``K`` dimensions. A :class:`KroneckerSketch`
        projects the gradients without forming them (one forward and one backward per chunk).
    rows : (int, int), optional
        ``(start, stop)``: the rows to compute. Default: all.
    progress : bool, default=False
        Show a progress bar.
    return_logits : bool, default=False
        Also return the rows' logits, which the :class:`KroneckerSketch` path computes on the
        way (``None`` on the other paths).
    out : GradientFile, optional
        Write the rows into this file (its row 0 is ``start``) instead of a matrix in memory,
        and return it.

    Returns
    -------
    Tensor of shape (stop - start, P) or (stop - start, K)
        Or ``out``, filled.
        With ``return_logits``, the pair ``(grads, logits (stop - start, C) or None)``.
    """
    start, stop = (0, len(inputs)) if rows is None else rows
    if not 0 <= start <= stop <= len(inputs):
        raise ValueError(f"rows must satisfy 0 <= start <= stop <= {len(inputs)}, got {rows!r}")
    x, y = inputs[start:stop], labels[start:stop]
    if isinstance(sketch, KroneckerSketch):
        chunks = _factored_chunks(fmodel, x, y, chunk_size, loss_fn, sketch)
    else:
        chunks = ((r, g, None) for r, g in iter_per_sample_grads(fmodel, x, y, chunk_size, loss_fn, sketch))
    total = -(-len(x) // chunk_size)
    width = fmodel.num_params if sketch is None else sketch.out_features
    if out is not None and out.shape != (len(x), width):
        raise ValueError(f"out must have shape {(len(x), width)}, got {out.shape}")
    # one (N, width) matrix filled chunk by chunk: no list of chunks and no concatenated copy
    sink = torch.empty(len(x), width, dtype=next(iter(fmodel.theta.values())).dtype) if out is None else out
    logit_chunks = []
    row = 0
    for _, g, lg in tqdm(chunks, total=total, desc="per-sample grads", disable=not progress, leave=False):
        if lg is not None:
            logit_chunks.append(lg.cpu())
        if out is None:
            sink[row : row + len(g)] = g.detach()
        else:
            out.write(row, g)
        row += len(g)
    if not return_logits:
        return sink
    if isinstance(sketch, KroneckerSketch) and not logit_chunks:
        # an empty shard still returns (0, C) logits: every process of a sharded run must
        # gather the same tensors
        device = next(iter(fmodel.theta.values())).device
        with torch.no_grad():
            logit_chunks.append(fmodel(inputs[:1].to(device))[:0].cpu())
    return sink, (torch.cat(logit_chunks) if logit_chunks else None)


def _factored_chunks(fmodel, x, y, chunk_size, loss_fn, sketch):
    """``(rows, S grad L, logits)`` chunk by chunk through :meth:`KroneckerSketch.per_sample_grads`."""
    device = next(iter(fmodel.theta.values())).device
    for start in range(0, len(x), chunk_size):
        rows = slice(start, min(start + chunk_size, len(x)))
        g, logits = sketch.per_sample_grads(
            fmodel, x[rows].to(device), y[rows].to(device), loss_fn, return_logits=True
        )
        yield rows, g, logits
