"""Selection's gradient matrix: every candidate's (sketched) per-sample gradient, checked
against the memory first, sharded over processes under :mod:`torch.distributed`, in memory or
in a file on disk."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from .kkt import CountSketch, FunctionalModel, KroneckerSketch, collect_gradients
from .kkt._columns import GradientFile

__all__ = ["check_gradient_memory", "gather_gradients"]


def _available_bytes() -> int | None:
    """The memory the system says is available (``MemAvailable`` of ``/proc/meminfo``), or
    ``None`` where it cannot tell."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_gradient_memory(n: int, width: int, dtype: torch.dtype, available: int | None = None) -> None:
    """Refuse, before any work, a gradient matrix ``(n, width)`` that cannot fit in memory.

    Parameters
    ----------
    n, width : int
        Candidates, and gradient coordinates per candidate (the sketch's width when sketched).
    dtype : torch.dtype
        The gradients' dtype.
    available : int, optional
        Bytes available; default ``MemAvailable`` of ``/proc/meminfo`` (no check where unknown).

    Raises
    ------
    ValueError
        When the matrix alone would take more than 80 % of the available memory: the message
        gives its size and the ways out, ``projection_dim=``, ``param_names=`` and
        ``offload_dir=``.
    """
    available = _available_bytes() if available is None else available
    need = n * width * torch.empty(0, dtype=dtype).element_size()
    if available is None or need <= 0.8 * available:
        return
    gib = 2**30
    raise ValueError(
        f"selection needs the per-sample gradients of {n:,} candidates over {width:,} coordinates: "
        f"{need / gib:.1f} GiB, where {available / gib:.1f} GiB of memory are available. Sketch them "
        f"(projection_dim=, e.g. 8192; --projection-dim), restrict the scope (param_names=), or "
        f"write them to disk (offload_dir=; --offload-dir)"
    )


def gather_gradients(
    fmodel: FunctionalModel,
    candidates: Tensor,
    labels: Tensor,
    loss_fn,
    chunk_size: int,
    sketch: CountSketch | KroneckerSketch | None,
    progress: bool,
    offload_dir: Path | None = None,
) -> tuple[Tensor | GradientFile, Tensor | None]:
    """All candidates' (sketched) per-sample gradients, sharded over processes if running distributed.

    Inside an initialised :mod:`torch.distributed` process group (e.g. under ``torchrun``;
    gloo on the CPU, nccl on GPUs), process ``r`` of ``W`` computes the rows
    ``[r * ceil(N / W), (r + 1) * ceil(N / W))`` with :func:`collect_gradients` and the rows are
    all-gathered, so every process holds the same ``(N, K)`` matrix and solves the same
    problem. Every process must pass the same candidates and settings (the sketch seed).

    Parameters
    ----------
    fmodel, candidates, labels, loss_fn, chunk_size, sketch, progress
        See :func:`kktexplain.kkt.collect_gradients`.
    offload_dir : Path, optional
        Write the rows to a :class:`~kktexplain.kkt._columns.GradientFile` in this folder
        instead (one process only); the caller closes it.

    Returns
    -------
    grads : Tensor of shape (N, P) or (N, K), on the CPU, or GradientFile
    logits : Tensor of shape (N, C) or None
        The candidates' logits where the gradient pass computed them (the Kronecker sketch).
    """
    import torch.distributed as dist

    sharded = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if sharded and offload_dir is not None:
        raise ValueError(
            "offload_dir works in one process; under torch.distributed the rows are gathered in memory"
        )
    n = len(candidates)
    if offload_dir is None:
        width = fmodel.num_params if sketch is None else sketch.out_features
        check_gradient_memory(n, width, next(iter(fmodel.theta.values())).dtype)
    rank, world = (dist.get_rank(), dist.get_world_size()) if sharded else (0, 1)
    per = -(-n // world)
    rows = (min(rank * per, n), min((rank + 1) * per, n))
    out = None
    if offload_dir is not None:
        width = fmodel.num_params if sketch is None else sketch.out_features
        out = GradientFile(offload_dir, n, width, dtype=next(iter(fmodel.theta.values())).dtype)
    try:
        mine, logits = collect_gradients(
            fmodel,
            candidates,
            labels,
            loss_fn,
            chunk_size,
            sketch,
            rows=rows,
            progress=progress,
            return_logits=True,
            out=out,
        )
    except BaseException:
        if out is not None:
            out.close()
        raise
    if not sharded:
        return mine, logits
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"

    def gather(rows: Tensor) -> Tensor:
        padded = torch.zeros(per, rows.shape[1], dtype=rows.dtype, device=device)
        padded[: len(rows)] = rows.to(device)
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded)
        return torch.cat([part[: max(0, min(per, n - r * per))].cpu() for r, part in enumerate(parts)])

    # every process takes the same path, so all of them have logits or none has
    return gather(mine), (None if logits is None else gather(logits))
