"""Loading the user's model and data for the console script (``kktexplain synthesize|select|explain``).

A model is ``module:factory`` (a module importable from the current directory, or a path to a
``.py`` file, and a callable returning an ``nn.Module``, or an ``nn.Module`` attribute) with
optional ``--weights``, or a TorchScript file. Data is an ``.npz`` (arrays ``x``, ``y``), an
IDX file (with an IDX labels file), an ``.npy`` array, an image folder (torchvision
``ImageFolder``), or ``module:function`` returning a dataset, a DataLoader, ``(x, y)`` or ``x``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ._data import as_data
from ._model_info import ScriptedModel

__all__ = ["ScriptedModel", "load_data", "load_model", "load_weights", "resolve_object"]

_TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".jit", ".torchscript")


def resolve_object(spec: str, option: str = "--model") -> Any:
    """The object named by ``module:name`` (a dotted module or a path to a ``.py`` file).

    The current directory is put on ``sys.path`` first, so a module next to the user resolves.

    Raises
    ------
    ValueError
        If ``spec`` is not ``module:name``, the module cannot be imported or has no ``name``.
    """
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{option} must be module:name (e.g. mymodel:build), got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
            path = Path(module_name)
            if not path.is_file():
                raise ValueError(f"{option}: no such file {str(path)!r}")
            spec_obj = importlib.util.spec_from_file_location(path.stem, path)
            if spec_obj is None or spec_obj.loader is None:
                raise ValueError(f"{option}: {str(path)!r} cannot be imported as a Python module")
            module = importlib.util.module_from_spec(spec_obj)
            sys.path.insert(0, str(path.resolve().parent))
            spec_obj.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(
            f"{option}: cannot import {module_name!r} ({e}); run from its folder or give a path"
        ) from e
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"{option}: module {module_name!r} has no attribute {attr!r}") from None


def load_weights(path: str | os.PathLike) -> dict[str, Tensor]:
    """A state dict from a ``.safetensors`` file or a ``torch.save`` file (``weights_only=True``).

    A checkpoint dict with a ``"state_dict"``, ``"model_state_dict"``, ``"model"``,
    ``"model_state"`` or ``"net"`` entry gives that entry. :func:`load_model` also strips a
    ``module.`` / ``model.`` / ``_orig_mod.`` prefix that every name carries and the model's
    names do not (DataParallel, Lightning, ``torch.compile``).

    Raises
    ------
    ValueError
        If the file is missing or holds no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--weights: no such file {str(path)!r}")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as e:
            raise ValueError("--weights: reading .safetensors needs the 'safetensors' package") from e
        try:
            return load_file(str(path))
        except Exception as e:  # safetensors' own errors: a truncated or foreign file
            raise ValueError(f"--weights: {str(path)!r} is not a readable .safetensors file ({e})") from e
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors of all kinds
        if "Unsupported global" in str(e):
            raise ValueError(
                f"--weights: {str(path)!r} holds a pickled object (e.g. torch.save(model)); "
                "kktexplain reads state dicts only (weights_only=True, so no code in the file "
                "runs): save model.state_dict() from trusted code, and give the class as "
                "--model module:factory"
            ) from e
        raise ValueError(
            f"--weights: {str(path)!r} is not a state dict torch.load can read safely ({e})"
        ) from e
    if isinstance(state, dict):
        for key in _STATE_KEYS:
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        found = (
            f"a dict with keys {sorted(map(str, state))[:12]}"
            if isinstance(state, dict)
            else type(state).__name__
        )
        raise ValueError(
            f"--weights: {str(path)!r} does not hold a state dict (names to tensors), nor one "
            f"under {', '.join(map(repr, _STATE_KEYS))}; it holds {found}: save "
            "model.state_dict() (torch.save or safetensors)"
        )
    return state


# where training scripts put the state dict in a checkpoint dict (Lightning, PyTorch's
# tutorials, common scripts)
_STATE_KEYS = ("state_dict", "model_state_dict", "model", "model_state", "net")


def _strip_prefix(state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """The state dict without a prefix that every name carries and the model's do not
    (``module.`` from DataParallel, ``model.`` from a Lightning module)."""
    own = set(model.state_dict())
    if set(state) <= own:
        return state
    for prefix in ("module.", "model.", "_orig_mod."):
        if all(k.startswith(prefix) for k in state):
            stripped = {k[len(prefix) :]: v for k, v in state.items()}
            if set(stripped) <= own:
                return stripped
    return state


def _call_factory(factory: Any, spec: str, option: str) -> Any:
    """``factory()``, its failure named as the option's (one line for the CLI, not a traceback)."""
    try:
        return factory()
    except Exception as e:  # noqa: BLE001 - any error of the user's code
        need = " (it must take no arguments: wrap it, e.g. def build(): return Net(128, 10))"
        raise ValueError(
            f"{option} {spec}: calling it raised {type(e).__name__}: {e}"
            + (need if isinstance(e, TypeError) and "argument" in str(e) else "")
        ) from e


def load_model(spec: str, weights: str | os.PathLike | None = None) -> nn.Module:
    """The user's model, in eval mode, on the CPU.

    Parameters
    ----------
    spec : str
        ``module:factory`` (``factory()`` returns the ``nn.Module``, or ``factory`` is one), or a
        TorchScript file (``torch.jit.save``; loaded with :func:`torch.jit.load` and wrapped
        in :class:`ScriptedModel`, so its parameter names start with ``scripted.``).
    weights : path-like, optional
        A ``.safetensors`` file or a state dict saved with ``torch.save``, loaded strictly
        into the factory's model (into the wrapped classifier where the factory returns a
        :class:`~kktexplain.models.TwoClassLogits` and the names lack its ``model.`` prefix).

    Returns
    -------
    nn.Module

    Raises
    ------
    ValueError
        For a missing file, an import error, weights that do not fit the model.
    TypeError
        If the factory does not give an ``nn.Module``.
    """
    path = Path(spec)
    if path.suffix in _TORCHSCRIPT_SUFFIXES or (path.is_file() and path.suffix != ".py"):
        if not path.is_file():
            raise ValueError(f"--model: no such TorchScript file {spec!r}")
        if weights is not None:
            raise ValueError("--weights is for module:factory models; a TorchScript file holds its weights")
        try:
            scripted = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as e:
            pickled = "constants.pkl" in str(e)  # a torch.save archive, not torch.jit.save
            hint = (
                ": it looks like a torch.save file (a pickled model or a state dict); give the "
                "class as --model module:factory and the state dict as --weights"
                if pickled
                else f" ({e})"
            )
            raise ValueError(f"--model: {spec!r} is not a TorchScript file{hint}") from e
        return ScriptedModel(scripted).eval()
    obj = resolve_object(spec, "--model")
    model = (
        obj if isinstance(obj, nn.Module) else _call_factory(obj, spec, "--model") if callable(obj) else obj
    )
    if not isinstance(model, nn.Module):
        raise TypeError(f"--model {spec} must give a torch.nn.Module, got {type(model).__name__}")
    if weights is not None:
        state = load_weights(weights)
        from .models import TwoClassLogits

        if isinstance(model, TwoClassLogits) and not any(k.startswith("model.") for k in state):
            state = {f"model.{k}": v for k, v in state.items()}  # the binary classifier's own weights
        state = _strip_prefix(state, model)
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"--weights do not fit the model of --model {spec}: {e}") from e
    else:
        print(
            f"kktexplain: --model {spec} without --weights: the factory's own parameters are "
            "explained (a fresh initialisation unless the factory loads trained weights)",
            file=sys.stderr,
        )
    return model.eval()


def _npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    with np.load(path, allow_pickle=False) as z:
        x_key = next((k for k in ("x", "inputs", "X") if k in z), None)
        if x_key is None:
            raise ValueError(
                f"--data {str(path)!r} must hold the inputs as 'x' (or 'inputs', 'X'), has {list(z)}"
            )
        y_key = next((k for k in ("y", "labels", "Y") if k in z), None)
        return z[x_key], (z[y_key] if y_key else None)


def _scale_integers(x: np.ndarray) -> np.ndarray:
    """8-bit images to floats in [0, 1] (as torchvision's ToTensor); floats unchanged."""
    if np.issubdtype(x.dtype, np.integer):
        return x.astype(np.float32) / 255.0
    return x


def _numeric_class_folders(classes: list[str], y: Tensor, spec: str) -> Tensor:
    """Labels by the class folders' own numbers where they are named ``0`` to ``C-1``:
    ``ImageFolder`` numbers them in string order (``10`` before ``2``)."""
    if not all(c.isascii() and c.isdigit() for c in classes):  # '²'.isdigit() is True
        return y
    numbers, indices = [int(c) for c in classes], list(range(len(classes)))
    if numbers == indices:
        return y
    if sorted(numbers) == indices:
        return torch.tensor(numbers)[y]
    print(
        f"kktexplain: --data {spec}: class folders named {classes[:6]}... are not 0 to "
        f"{len(classes) - 1}; their labels follow the folders' string order (ImageFolder's): "
        f"{dict(list(zip(classes, range(len(classes))))[:6])}...",
        file=sys.stderr,
    )
    return y


def load_data(
    spec: str,
    labels: str | None = None,
    limit: int | None = None,
    grayscale: bool = False,
    token_ids: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Inputs and labels from a file, an image folder or ``module:function``.

    Parameters
    ----------
    spec : str
        ``*.npz`` with arrays ``x`` (``inputs``) and optionally ``y`` (``labels``); ``*.npy``
        (``uint8`` inputs become ``[0, 1]`` floats unless the model reads token ids; labels of
        whole-number floats become class indices);
        an IDX file (``*-ubyte``, ``*.idx``, optionally ``.gz``; 8-bit values become
        ``[0, 1]`` floats, ``(N, H, W)`` becomes ``(N, 1, H, W)``); a folder of class
        sub-folders (torchvision ``ImageFolder``, images as RGB ``[0, 1]`` tensors, all of one
        size; folders named ``0`` to ``C-1`` give their own numbers as labels, not
        ImageFolder's string order); or ``module:function`` whose call returns a Dataset,
        DataLoader, ``(x, y)`` or ``x``.
    labels : str, optional
        A labels file (IDX, ``.npy``) for inputs that carry none.
    limit : int, optional
        Keep the first ``limit`` samples.
    grayscale : bool, default=False
        Read an image folder as one channel instead of RGB.
    token_ids : bool, default=False
        The model reads token ids (its first layer is an embedding): integer inputs stay
        integers (``torch.long``) instead of being refused.

    Returns
    -------
    x : Tensor of shape (N, *input_shape)
        float32, or ``torch.long`` token ids with ``token_ids``.
    y : Tensor of shape (N,) or (N, C), or None
    """
    path = Path(spec)
    y: Any = None
    if path.is_dir():
        from torchvision import datasets, transforms

        steps = [transforms.Grayscale(1)] if grayscale else []
        folder = datasets.ImageFolder(
            str(path), transform=transforms.Compose([*steps, transforms.ToTensor()])
        )
        if len(folder) == 0:
            raise ValueError(f"--data {spec!r}: the image folder holds no images")
        x, y = as_data(folder, "--data")
        y = _numeric_class_folders(folder.classes, y, spec)
    elif path.is_file():
        name = path.name.removesuffix(".gz")
        if name.endswith(".npz"):
            xa, ya = _npz(path)
        elif name.endswith(".npy"):
            xa, ya = np.load(path, allow_pickle=False), None
        elif "ubyte" in name or name.endswith(".idx"):
            from .datasets import read_idx

            xa, ya = _scale_integers(read_idx(path)), None
            if xa.ndim == 3:
                xa = xa[:, None]
        else:
            raise ValueError(
                f"--data {spec!r}: unknown file type; use .npz (x, y), .npy, an IDX file, an image "
                "folder or module:function"
            )
        if xa.dtype == np.uint8 and not token_ids:
            xa = _scale_integers(xa)  # as IDX files and image folders are read
            print(f"kktexplain: --data {spec}: 8-bit inputs scaled to [0, 1] (x / 255)", file=sys.stderr)
        if ya is not None and ya.dtype.kind == "f" and ya.ndim == 1 and np.array_equal(ya, np.round(ya)):
            ya = ya.astype(np.int64)  # 0.0, 1.0, 2.0 are class indices, as with --labels
        x, y = as_data(
            (np.ascontiguousarray(xa), ya) if ya is not None else np.ascontiguousarray(xa),
            "--data",
            token_ids,
        )
    elif ":" in spec:
        obj = resolve_object(spec, "--data")
        data = _call_factory(obj, spec, "--data") if callable(obj) else obj
        x, y = as_data(data, f"--data {spec}", token_ids)
    else:
        raise ValueError(f"--data {spec!r}: no such file or folder, and not module:function")
    if labels is not None:
        lpath = Path(labels)
        if not lpath.is_file():
            raise ValueError(f"--labels: no such file {labels!r}")
        if lpath.name.removesuffix(".gz").endswith(".npy"):
            ya = np.load(lpath, allow_pickle=False)
        else:
            from .datasets import read_idx

            ya = read_idx(lpath)
        if y is not None:
            raise ValueError(
                f"--labels: --data {spec!r} already carries labels; --labels is for inputs without them"
            )
        ya = np.array(ya)
        if ya.dtype.kind == "f" and np.array_equal(ya, np.round(ya)):
            ya = ya.astype(np.int64)  # 0.0, 1.0, 2.0 are class indices
        if ya.dtype.kind not in "iu" or ya.ndim != 1:
            raise ValueError(
                f"--labels must hold integer class indices of shape (n,), got dtype {ya.dtype} and "
                f"shape {ya.shape}"
            )
        y = torch.from_numpy(ya).long()
        if len(y) != len(x):
            raise ValueError(f"--labels has {len(y)} labels for {len(x)} inputs")
    if limit is not None:
        x = x[:limit]
        y = None if y is None else y[:limit]
    if y is not None and not y.is_floating_point():
        y = y.long()
    return (x if token_ids and not x.is_floating_point() else x.float()), y
