"""Gradients of the loss with respect to the parameters: the weighted sum and per-sample.

Both work on a *functional* view of the model (:func:`torch.func.functional_call`) with
detached copies of its parameters, so the user's ``nn.Module`` never accumulates ``.grad`` and
its ``requires_grad`` flags are never touched.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn
from torch.func import grad, vmap

from ._conditions import cross_entropy
from ._functional import FunctionalModel

# Gradient entries formed at once before a projection (256 MiB of float32)
CHUNK_ENTRIES = 2**26

__all__ = [
    "weighted_loss_grad",
    "per_sample_grads",
    "iter_per_sample_grads",
    "parameter_jvp",
]

LossFn = Callable[[Tensor, Tensor], Tensor]


def _dense(t: Tensor) -> Tensor:
    return t.to_dense() if t.layout != torch.strided else t


def weighted_loss_grad(
    fmodel: FunctionalModel,
    inputs: Tensor,
    labels: Tensor,
    weights: Tensor,
    loss_fn: LossFn = cross_entropy,
    create_graph: bool = True,
) -> tuple[dict[str, Tensor], Tensor]:
    """``sum_i w_i grad_theta L(Phi(x_i), y_i)`` as one gradient of ``sum_i w_i L_i``.

    This is the stationarity sum of the paper (Eq 5) with ``w = lambda``. One backward pass
    gives the whole sum; with ``create_graph=True`` it stays differentiable in ``inputs`` and
    ``weights``, so the outer loss needs a single double backward.

    Parameters
    ----------
    fmodel : FunctionalModel
    inputs : Tensor of shape (N, *input_shape)
    labels : Tensor of shape (N,) or (N, C)
    weights : Tensor of shape (N,)
    loss_fn : callable, default=cross_entropy
        ``(logits (N, C), labels) -> (N,)`` per-sample loss.
    create_graph : bool, default=True

    Returns
    -------
    grads : dict of str to Tensor
        Same keys and shapes as ``fmodel.theta``.
    logits : Tensor of shape (N, C)
    """
    theta = {k: v.detach().requires_grad_(True) for k, v in fmodel.theta.items()}
    with torch.enable_grad():
        logits = fmodel(inputs, theta)
        total = (weights * loss_fn(logits, labels)).sum()
        g = torch.autograd.grad(total, list(theta.values()), create_graph=create_graph, allow_unused=True)
    out = {k: (torch.zeros_like(theta[k]) if gk is None else gk) for k, gk in zip(theta, g)}
    return out, logits


def per_sample_grads(
    fmodel: FunctionalModel, inputs: Tensor, labels: Tensor, loss_fn: LossFn = cross_entropy
) -> dict[str, Tensor]:
    """Per-sample gradients ``grad_theta L(Phi(x_i), y_i)`` with :func:`torch.func.vmap`.

    Parameters
    ----------
    fmodel : FunctionalModel
        Must not contain layers that mix samples in the forward pass (BatchNorm in training
        mode); models are evaluated in eval mode.
    inputs : Tensor of shape (N, *input_shape)
    labels : Tensor of shape (N,) or (N, C)
    loss_fn : callable, default=cross_entropy

    Returns
    -------
    dict of str to Tensor
        Each entry has shape ``(N, *param_shape)``.

    Warns
    -----
    UserWarning
        Once per ``fmodel``, where ``vmap`` cannot batch the model (e.g. ``nn.GRU``): the
        gradients are then taken one sample at a time.
    """

    def one(theta: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return loss_fn(fmodel(x[None], theta), y[None]).sum()

    theta = {k: v.detach() for k, v in fmodel.theta.items()}
    if not getattr(fmodel, "_unbatchable", False):
        try:
            return vmap(grad(one), in_dims=(None, 0, 0))(theta, inputs, labels)
        except torch.OutOfMemoryError:
            raise  # memory, not batching: a loop would not help (lower chunk_size)
        except (RuntimeError, NotImplementedError) as e:
            first_error = e
    # layers vmap cannot batch (nn.GRU and nn.RNN here): one gradient per sample, the same
    # numbers, slower. A model that fails here too raises its own error, without vmap's
    rows = [grad(one)(theta, inputs[i], labels[i]) for i in range(len(inputs))]
    if not getattr(fmodel, "_unbatchable", False):
        fmodel._unbatchable = True
        warnings.warn(
            f"torch.func.vmap cannot batch this model's per-sample gradients ({first_error}); "
            "they are computed one sample at a time (the same numbers, slower)",
            UserWarning,
            stacklevel=2,
        )
    if not rows:
        return {k: v.new_zeros((0, *v.shape)) for k, v in theta.items()}
    return {k: torch.stack([r[k] for r in rows]) for k in theta}


def iter_per_sample_grads(
    fmodel: FunctionalModel,
    inputs: Tensor,
    labels: Tensor,
    chunk_size: int = 256,
    loss_fn: LossFn = cross_entropy,
    projection: Callable[[Tensor], Tensor] | None = None,
) -> Iterator[tuple[slice, Tensor]]:
    """Flattened per-sample gradients, chunk by chunk, optionally randomly projected.

    Where every parameter of ``fmodel.theta`` belongs to an ``nn.Linear`` layer, a chunk's rows
    are formed from one batched forward (:func:`linear_factored`); otherwise by ``vmap``.

    Parameters
    ----------
    fmodel : FunctionalModel
    inputs : Tensor of shape (N, *input_shape)
        May live on the CPU; chunks are moved to the model's device (floating ones also to the
        parameters' dtype).
    labels : Tensor of shape (N,) or (N, C)
    chunk_size : int, default=256
        Bounds the memory to ``chunk_size * P`` floats.
    loss_fn : callable, default=cross_entropy
    projection : callable, optional
        Maps ``(chunk, P)`` to ``(chunk, K)``, e.g. a :class:`CountSketch` (a
        Johnson-Lindenstrauss projection), applied to every chunk. The rows are then formed
        and projected in parts of at most ``CHUNK_ENTRIES`` (2**26) gradient entries, so the
        unprojected block stays within 256 MiB of float32 whatever ``chunk_size``.

    Yields
    ------
    rows : slice
        The samples of this chunk.
    grads : Tensor of shape (chunk, P) or (chunk, K)
    """
    first = next(iter(fmodel.theta.values()))
    device = first.device
    # floating inputs in the parameters' dtype, a chunk at a time (float32 data, float64 model)
    dtype = first.dtype if inputs.is_floating_point() else inputs.dtype
    factored = linear_factored(fmodel)

    def flat_grads(x: Tensor, y: Tensor) -> Tensor:
        nonlocal factored
        if factored is not None:
            try:
                return factored.per_sample_grads(fmodel, x, y, loss_fn)
            except ValueError:  # the layer is used in a way the factored path cannot see
                factored = None
        g = per_sample_grads(fmodel, x, y, loss_fn)
        # nn.Embedding(sparse=True) gives sparse gradients, which have no flatten
        return torch.cat([_dense(g[k]).flatten(1) for k in fmodel.theta], dim=1)

    # a projected chunk is formed in parts of at most CHUNK_ENTRIES gradient entries: the full
    # (chunk, P) block of a large model (256 x 4M parameters: 4 GiB) only lives to be sketched
    part = (
        chunk_size
        if projection is None
        else max(1, min(chunk_size, CHUNK_ENTRIES // max(fmodel.num_params, 1)))
    )
    for start in range(0, inputs.shape[0], chunk_size):
        rows = slice(start, min(start + chunk_size, inputs.shape[0]))
        if projection is None:
            yield rows, flat_grads(inputs[rows].to(device, dtype), labels[rows].to(device))
            continue
        pieces = []
        for lo in range(rows.start, rows.stop, part):
            sub = slice(lo, min(lo + part, rows.stop))
            pieces.append(projection(flat_grads(inputs[sub].to(device, dtype), labels[sub].to(device))))
        yield rows, torch.cat(pieces)


def linear_factored(fmodel: FunctionalModel):
    """An exact (unprojected) :class:`KroneckerSketch` when every parameter is a Linear layer's.

    For ``nn.Linear`` layers the per-sample gradient is ``g_i a_i^T`` (``a`` the layer's input,
    ``g`` the loss gradient in its output), so one batched forward and a backward to the layer
    outputs give every row exactly: the cost of about one forward pass, where ``vmap`` runs the
    whole network per sample. This is the common last-layer scope. The factored path checks
    itself against ``vmap`` on its first chunk and is dropped (``vmap`` is used) if it
    disagrees or the model uses the layer in a way it cannot factor. Scopes with other layer
    types take the ``vmap`` path (an exact convolution gradient would need the unfolded
    patches of every sample, which this path does not try).
    """
    from ._kronecker import KroneckerSketch

    modules = dict(fmodel.model.named_modules())
    for name in fmodel.theta:
        module = modules.get(name.rpartition(".")[0])
        if type(module) is not nn.Linear:
            return None
    try:
        sketch = KroneckerSketch(fmodel, fmodel.num_params)
    except ValueError:
        return None
    return sketch if sketch.out_features == fmodel.num_params and sketch.is_exact else None


def parameter_jvp(
    f: Callable[[dict[str, Tensor]], Tensor], theta: dict[str, Tensor], tangent: dict[str, Tensor]
) -> tuple[Tensor, Tensor]:
    """``(f(theta), J_f(theta) tangent)``: the derivative of ``f`` along ``tangent``.

    One forward-mode product (:func:`torch.func.jvp`). Where an operator has no forward-mode
    rule (e.g. ``weight_norm``'s fused kernel), the same product by reverse mode twice: ``J v``
    is the vector-Jacobian product of the linear map ``u -> J^T u`` with ``v``. Where there is
    no double backward either (``nn.EmbeddingBag``), one reverse pass per entry of the output.

    Parameters
    ----------
    f : callable
        Parameters (a dict of tensors) to an output tensor, e.g. logits ``(N, C)``.
    theta, tangent : dict of str to Tensor
        The point and the direction, with the same keys and shapes.

    Returns
    -------
    out : Tensor
        ``f(theta)``.
    derivative : Tensor
        Of ``out``'s shape.
    """
    try:
        return torch.func.jvp(f, (theta,), (tangent,))
    except NotImplementedError:
        out, vjp_fn = torch.func.vjp(f, theta)
    try:
        _, back = torch.func.vjp(lambda u: vjp_fn(u)[0], torch.zeros_like(out))
        return out, back(tangent)[0]
    except NotImplementedError:
        pass
    # no double backward either (nn.EmbeddingBag): one reverse pass per output entry
    derivative = torch.empty(out.numel(), dtype=out.dtype, device=out.device)
    basis = torch.zeros(out.numel(), dtype=out.dtype, device=out.device)
    for i in range(out.numel()):
        basis[i] = 1
        row = vjp_fn(basis.view_as(out))[0]
        derivative[i] = sum((row[k] * tangent[k]).sum() for k in tangent)  # before the reset:
        basis[i] = 0  # a parameter added to the output has the basis itself as its gradient
    return out, derivative.view_as(out)
