"""What a model tells about itself: device, dtype, input shape, number of classes, a computable copy."""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ._model_state import eval_mode
from ._tensors import readable
from ._warn import warn_user

__all__ = [
    "ScriptedModel",
    "as_forward_args",
    "model_device",
    "model_dtype",
    "input_dtype",
    "cast_inputs",
    "token_layer",
    "infer_input_shape",
    "infer_num_classes",
    "check_logits",
    "computable_model",
    "resolve_input_shape",
]


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter."""
    return next(model.parameters()).device


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


_TOKEN_LAYERS = (nn.Embedding, nn.EmbeddingBag)


def token_layer(model: nn.Module) -> str | None:
    """The name of the model's first layer if it is an ``nn.Embedding`` (it reads token ids).

    The first module with parameters of its own decides, in registration order (the order
    :func:`infer_input_shape` reads too). Where another layer is registered before an
    embedding (a head defined first in ``__init__``), a probe forward of token ids ``(2, 1)``
    (eval mode, no gradients) decides: the embedding fed the model's input itself. ``None``
    for a model that reads floating inputs.
    """
    for name, module in model.named_modules():
        if isinstance(module, _TOKEN_LAYERS):
            return name
        if module is not model and next(module.parameters(recurse=False), None) is not None:
            break
    else:
        return None
    if not any(isinstance(m, _TOKEN_LAYERS) for m in model.modules()):
        return None
    return _first_layer_run(model)


def _first_layer_run(model: nn.Module) -> str | None:
    """The embedding that the model feeds its own input, on a probe of token ids, or ``None``.

    Only an embedding that receives the probe tensor itself counts (a positional embedding of
    ``arange(T)`` does not); one seen before the forward fails later (a convolution longer
    than the probe) still counts.
    """
    from ._model_state import eval_mode

    fed: list[str] = []
    probe = torch.zeros(2, 1, dtype=torch.long, device=model_device(model))

    def seen(name: str, args: tuple) -> None:
        if args and args[0] is probe and not fed:
            fed.append(name)

    handles = []
    try:
        for name, module in model.named_modules():
            if isinstance(module, _TOKEN_LAYERS):
                handles.append(module.register_forward_pre_hook(lambda _m, a, n=name: seen(n, a)))
        with torch.no_grad(), eval_mode(model):
            model(probe)
    except Exception:  # noqa: BLE001, S110 - an embedding fed the ids was recorded before it
        pass
    finally:
        for handle in handles:
            handle.remove()
    return fed[0] if fed else None


def check_token_ids(model: nn.Module, name: str, x: Tensor) -> None:
    """Raise ``ValueError`` naming ``name`` when integer inputs of a model that reads token ids
    (:func:`token_layer`) fall outside its embedding's rows ``[0, num_embeddings)``."""
    layer = token_layer(model)
    if layer is None or x.is_floating_point() or x.numel() == 0:
        return
    rows = model.get_submodule(layer).num_embeddings
    low, high = int(x.min()), int(x.max())
    if low < 0 or high >= rows:
        raise ValueError(
            f"{name} holds token ids in [{low}, {high}], but the model's embedding {layer!r} has "
            f"{rows} rows: ids must lie in [0, {rows})"
        )


def input_dtype(model: nn.Module) -> torch.dtype:
    """``torch.long`` for a model that reads token ids (:func:`token_layer`), else its dtype."""
    return torch.long if token_layer(model) is not None else model_dtype(model)


def cast_inputs(x: Tensor, device: torch.device | str, dtype: torch.dtype) -> Tensor:
    """``x`` on ``device``; floating inputs also in ``dtype`` (token ids keep their integer dtype)."""
    return x.to(device, dtype) if x.is_floating_point() else x.to(device)


# Layers with parameters that keep the width of flat features (the Linear after them tells it).
_WIDTH_KEEPING = (nn.BatchNorm1d, nn.LayerNorm)


def infer_input_shape(
    model: nn.Module, input_shape: Sequence[int] | None, warn_flatten: bool = True
) -> tuple[int, ...]:
    """``input_shape`` if given, else ``model.input_shape``, else a leading Linear's width.

    A model that starts with ``nn.Flatten`` gets the flat width of its first ``nn.Linear``, with
    a ``UserWarning`` (unless ``warn_flatten`` is False) that suggests an image ``input_shape``:
    the DSVs would otherwise be flat vectors.

    Raises
    ------
    ValueError
        If the shape cannot be inferred; the message asks for ``input_shape``.
    """
    if input_shape is not None:
        shape = tuple(input_shape) if not isinstance(input_shape, numbers.Integral) else (input_shape,)
        if not shape or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in shape
        ):
            raise ValueError(f"input_shape must be a tuple of positive ints, got {input_shape!r}")
        return tuple(int(s) for s in shape)
    shape = getattr(model, "input_shape", None)
    if shape is not None:
        return tuple(int(s) for s in shape)
    flatten_first = False
    for module in model.modules():
        if isinstance(module, nn.Flatten):
            flatten_first = True
        if isinstance(module, nn.Linear):
            if flatten_first and warn_flatten:
                warn_user(_flatten_hint(module.in_features))
            return (module.in_features,)
        if isinstance(module, _WIDTH_KEEPING):
            continue  # a normalisation of the features before the first Linear keeps their width
        if module is not model and next(module.parameters(recurse=False), None) is not None:
            # the first layer with parameters is not a Linear (a convolution, an RNN, an
            # embedding, ...): a later Linear's width says nothing of the input
            break
    raise ValueError(
        "input_shape could not be inferred from the model; pass input_shape=(C, H, W) "
        "(the shape of one input, without the batch dimension)"
    )


def infer_num_classes(
    model: nn.Module,
    input_shape: tuple[int, ...],
    additional_forward_args: tuple = (),
    source: str | None = None,
) -> int:
    """Run one probe batch and check that the model returns logits ``(N, C)``.

    ``source`` names where ``input_shape`` came from in the error (e.g. ``"data"``); by
    default the ``input_shape`` setting.

    Raises
    ------
    TypeError
        If the model returns something other than a floating-point tensor.
    ValueError
        If the output is not ``(N, C)`` with ``C >= 2``, or the input shape does not fit.
    """
    device = model_device(model)
    probe = torch.zeros(2, *input_shape, device=device, dtype=input_dtype(model))
    try:
        with torch.no_grad():
            out = model(probe, *additional_forward_args)
    except RuntimeError as e:
        what = f"input_shape={input_shape}" if source is None else f"{source} of shape {input_shape}"
        hint = (
            ", or additional_forward_args do not: they are passed unchanged with every batch of "
            "samples (one value per sample is not supported)"
            if additional_forward_args
            else ""
        )
        if not hint and len(input_shape) == 3 and input_shape[-1] in (1, 3) and input_shape[0] > 3:
            hint = (
                ": the inputs look channels-last (H, W, C); torch models take (C, H, W), so "
                "transpose them (x.permute(0, 3, 1, 2), or np.transpose(x, (0, 3, 1, 2)))"
            )
        raise ValueError(f"{what} does not fit the model{hint} (forward failed: {e})") from e
    except TypeError as e:
        if not missing_argument(e):  # another TypeError of the forward: its own message
            raise
        given = "the inputs and additional_forward_args" if additional_forward_args else "the inputs alone"
        raise TypeError(
            f"the model's forward cannot be called with {given} ({e}): pass its other arguments as "
            "additional_forward_args=(...) (the same values for every batch); a model of several "
            "input tensors is not supported: wrap it in a module that takes one (docs/captum.md)"
        ) from e
    return check_logits(out, tuple(probe.shape))


def missing_argument(error: TypeError) -> bool:
    """Whether a forward's ``TypeError`` says it was called with too few or too many arguments
    ("forward() missing 1 required positional argument", "takes 2 positional arguments but 3
    were given")."""
    text = str(error)
    return ("missing" in text and "argument" in text) or ("positional argument" in text and "given" in text)


def check_logits(out: Any, batch_shape: tuple[int, ...]) -> int:
    """Check that a model's output for a batch of inputs is logits ``(N, C)``; return ``C``.

    Parameters
    ----------
    out : Any
        What the model returned.
    batch_shape : tuple of int
        The shape of the batch it was given, ``(N, *input_shape)``.

    Returns
    -------
    int
        The number of classes ``C``.

    Raises
    ------
    TypeError
        If the output is not a floating-point tensor (a tuple, a dict, class indices).
    ValueError
        If it is not ``(N, C)`` with ``C >= 2`` (one logit per input names
        :class:`~kktexplain.models.TwoClassLogits`).
    """
    if not isinstance(out, Tensor) or not out.is_floating_point():
        got = type(out).__name__ if not isinstance(out, Tensor) else f"a tensor of dtype {out.dtype}"
        wrap = (
            ": wrap the model in a module whose forward returns the logits alone"
            if isinstance(out, tuple | list | dict)
            else ""
        )
        raise TypeError(
            f"model must return a floating-point tensor of logits of shape (N, C), got {got}{wrap}"
        )
    if (out.ndim == 1 and out.shape[0] == batch_shape[0]) or (
        out.ndim == 2 and out.shape == (batch_shape[0], 1)
    ):
        raise ValueError(
            f"model must return logits of shape (N, C) with C >= 2; for inputs of shape "
            f"{batch_shape} it returned {tuple(out.shape)}, one logit per input: wrap a "
            f"binary classifier as kktexplain.models.TwoClassLogits(model), whose logits "
            f"[-f/2, f/2] have the binary cross-entropy of f"
        )
    if out.ndim != 2 or out.shape[0] != batch_shape[0] or out.shape[1] < 2:
        raise ValueError(
            f"model must return logits of shape (N, C) with C >= 2; for inputs of shape "
            f"{batch_shape} it returned {tuple(out.shape)}"
        )
    if bool(torch.isfinite(out).all()) and bool((out >= 0).all()):
        sums = out.double().sum(1)
        if bool(torch.allclose(sums, torch.ones_like(sums), atol=1e-3)):
            warn_user(
                "the model's outputs look like probabilities (non-negative rows that sum to 1, "
                "e.g. a final Softmax); the DeepKKT conditions need logits: pass the model "
                "without its final Softmax"
            )
    return int(out.shape[1])


def _flatten_hint(width: int) -> str:
    guess = ""
    for channels in (1, 3):
        side = round((width / channels) ** 0.5)
        if side > 1 and channels * side * side == width:
            guess = f", e.g. input_shape=({channels}, {side}, {side})"
            break
    return (
        f"the model starts with nn.Flatten, so the inputs are taken as flat vectors of shape "
        f"({width},); if the model takes images, pass input_shape{guess} (or set "
        "model.input_shape) to synthesise images"
    )


def computable_model(model: nn.Module) -> tuple[nn.Module, dict[str, Any]]:
    """The model to compute with: a float32 copy of a float16/bfloat16 model, else the model.

    Half-precision gradients of gradients overflow and underflow (all-NaN DSVs); the copy
    leaves the user's model untouched. The result records ``settings["model_dtype"]`` and
    ``settings["compute_dtype"]``.
    """
    dtype = model_dtype(model)
    if dtype in (torch.float16, torch.bfloat16):
        return copy.deepcopy(model).float(), {"model_dtype": str(dtype), "compute_dtype": "torch.float32"}
    return model, {}


def resolve_input_shape(
    model: nn.Module,
    input_shape: Sequence[int] | None,
    data_shape: tuple[int, ...] | None,
    args: tuple = (),
) -> tuple[int, ...]:
    """The shape of one input: given, the model's, or the data's (the data's before any
    layer's width for a model that reads token ids, :func:`token_layer`).

    A flat width read off a leading ``nn.Linear`` (e.g. after ``nn.Flatten``) gives way to the
    data's shape when that has as many elements (images for an image model that flattens),
    when the data's last dimension is that width (a sequence ``(T, width)`` that the layer maps
    step by step), or when the model's forward (in eval mode, without gradients, with ``args``
    after the inputs) takes the data's shape and not that width: the first ``nn.Linear``
    registered need not be the first to run (a head defined before the body).
    """
    if (
        input_shape is None
        and data_shape is not None
        and getattr(model, "input_shape", None) is None
        and token_layer(model) is not None
    ):
        return data_shape  # token ids: no layer's width tells their length
    try:
        shape = infer_input_shape(model, input_shape, warn_flatten=data_shape is None)
    except ValueError:
        if data_shape is None:
            raise
        return data_shape
    if (
        input_shape is None
        and getattr(model, "input_shape", None) is None
        and data_shape is not None
        and data_shape != shape
        and (
            math.prod(data_shape) == math.prod(shape)
            # a leading nn.Linear also maps (..., width) inputs, e.g. one vector per time step
            or (len(shape) == 1 and data_shape[-1:] == shape)
            or (not _forward_runs(model, shape, args) and _forward_runs(model, data_shape, args))
        )
    ):
        return data_shape
    return shape


def _forward_runs(model: nn.Module, shape: tuple[int, ...], args: tuple) -> bool:
    """Whether ``model`` gives logits for inputs of ``shape``: :func:`infer_num_classes`'s probe,
    in eval mode (the model is left as it was)."""
    try:
        with eval_mode(model):
            infer_num_classes(model, shape, args)
    except (RuntimeError, TypeError, ValueError, IndexError):
        return False
    return True


def as_forward_args(additional_forward_args: Any) -> tuple:
    """captum's ``additional_forward_args`` as the tuple passed after the inputs.

    Parameters
    ----------
    additional_forward_args : Any
        ``None`` (nothing), a tuple (its items, in order) or one object (itself).

    Returns
    -------
    tuple
        Tensors made under :func:`torch.inference_mode` among the items are copied (autograd
        refuses to save them for backward).
    """
    if additional_forward_args is None:
        return ()
    args = (
        additional_forward_args if isinstance(additional_forward_args, tuple) else (additional_forward_args,)
    )
    return tuple(readable(a) if isinstance(a, Tensor) else a for a in args)


class ScriptedModel(nn.Module):
    """A TorchScript module behind a Python ``nn.Module``.

    ``torch.func.functional_call`` (which stationarity's gradients need) refuses a
    ``ScriptModule`` itself but substitutes the parameters of one held as a submodule. The
    parameter names get the prefix ``scripted.`` (for ``--param-names``).

    Parameters
    ----------
    scripted : torch.jit.ScriptModule
    """

    def __init__(self, scripted: nn.Module) -> None:
        super().__init__()
        self.scripted = scripted

    def forward(self, x: Tensor, *args: Any) -> Tensor:
        """``scripted(x, *args)``: logits of shape (N, C) for inputs of shape (N, *input_shape)."""
        return self.scripted(x, *args)
