"""Checkpoint files of a synthesis run: the state, and what the run was started with.

A checkpoint holds a :meth:`SynthesisState.state_dict` as plain arrays (through
:mod:`kktexplain._io`: atomic, versioned, no pickle) and a *fingerprint* of the run: the
settings that change its numbers, the labels, the initial inputs, every parameter and buffer
of the model and the forward's ``additional_forward_args``. A run resumes from a checkpoint
only when every entry of the fingerprint agrees; otherwise a ``ValueError`` names the first
that differs (a checkpoint of an older fingerprint is named as such).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._io import read_npz, write_npz

__all__ = ["check_fingerprint", "describe_value", "fingerprint", "load_checkpoint", "save_checkpoint"]

# what a fingerprint covers: 2 added every buffer and parameter and the forward args
_FINGERPRINT_VERSION = 2

# settings that do not change a synthesis run's numbers
_IGNORED = ("progress", "steps", "chunk_size", "projection_dim", "sketch", "maximize_sum", "ridge")


def _digest(tensors: list[Tensor]) -> str:
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())  # any dtype, bfloat16 too
    return h.hexdigest()


def describe_value(value: Any) -> Any:
    """A forward argument as the fingerprint compares it: tensors by digest, containers item by
    item, numbers and strings as they are, other objects by their type (a repr may hold a
    memory address)."""
    if isinstance(value, Tensor):
        return _digest([value])
    if isinstance(value, dict):
        return {str(k): describe_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [describe_value(v) for v in value]
    if isinstance(value, np.ndarray | np.generic):
        return [
            str(value.dtype),
            list(np.shape(value)),
            hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest(),
        ]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    text = repr(value)  # a dtype, a slice, a small config: its repr tells values apart
    return f"{type(value).__module__}.{type(value).__qualname__}" if " at 0x" in text else text


def _json(value: Any) -> Any:
    """As it reads back from JSON (tuples become lists, odd objects strings)."""
    return json.loads(json.dumps(value, default=str))


def fingerprint(
    settings: dict[str, Any],
    resolved: dict[str, Any],
    labels: Tensor,
    x0: Tensor,
    target: dict[str, Tensor],
    model_state: list[Tensor] = (),
    args: tuple = (),
) -> dict[str, Any]:
    """What a run must share with a checkpoint to resume from it.

    Parameters
    ----------
    settings : dict
        The explainer's settings and what was inferred.
    resolved : dict
        Settings after resolution: ``lr``, ``objective`` (a dict), ``augmentation`` (a dict or
        None), ``lambda_scale_value``.
    labels : Tensor of shape (N,) or (N, C)
    x0 : Tensor of shape (N, *input_shape)
        The initial inputs (they follow from ``init``, ``seed`` and ``init_data``).
    target : dict of str to Tensor
        The stationarity target ``theta*`` (or ``theta* - theta_0``).
    model_state : list of Tensor
        Every parameter and buffer of the model: those outside the scope change the DSVs too
        (another first layer, BatchNorm statistics).
    args : tuple
        The forward's ``additional_forward_args``.

    Returns
    -------
    dict
        JSON-serialisable; the ``model`` entry is a digest of ``target`` and ``model_state``,
        ``forward_args`` one of ``args``.
    """
    out = {k: v for k, v in settings.items() if k not in _IGNORED}
    out.update(resolved)
    out["labels"] = _digest([labels])
    out["init_data"] = _digest([x0])
    out["model"] = _digest(list(target.values()) + list(model_state))
    out["forward_args"] = describe_value(list(args))
    out["fingerprint_version"] = _FINGERPRINT_VERSION
    return _json(out)


def check_fingerprint(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """Raise ``ValueError`` naming the first setting in which ``saved`` and ``current`` differ.

    Parameters
    ----------
    saved, current : dict
        From :func:`fingerprint`.
    path : Path
        The checkpoint (for the message).
    """
    if saved.get("fingerprint_version") != current.get("fingerprint_version"):
        raise ValueError(
            f"checkpoint {str(path)!r} was written by another kktexplain version (fingerprint "
            f"v{saved.get('fingerprint_version', 1)}, this one v{current.get('fingerprint_version')}): "
            "it cannot be checked against this run; start afresh with another checkpoint path"
        )
    for key in list(current) + [k for k in saved if k not in current]:
        if saved.get(key) != current.get(key):
            if key in ("labels", "init_data", "model", "forward_args"):  # name them, not their hashes
                thing = {"model": "model weights or buffers", "forward_args": "additional_forward_args"}.get(
                    key, key
                )
                raise ValueError(
                    f"checkpoint {str(path)!r} was written by a run with other {thing} than this "
                    f"run's: {key} must match to resume (or pass another checkpoint path)"
                )
            raise ValueError(
                f"checkpoint {str(path)!r} was written by a run with {key}={saved.get(key)!r}, this "
                f"run has {key}={current.get(key)!r}: {key} must match to resume (or pass another "
                "checkpoint path)"
            )


def save_checkpoint(path: Path, state: dict[str, Any], fingerprint: dict[str, Any]) -> Path:
    """Write a :meth:`SynthesisState.state_dict` and its run's fingerprint, atomically.

    Parameters
    ----------
    path : Path
    state : dict
        From :meth:`SynthesisState.state_dict`.
    fingerprint : dict
        From :func:`fingerprint`.

    Returns
    -------
    Path
    """
    arrays = {k: state[k] for k in ("inputs", "rho", "active", "aug_generator")}
    other = []
    for i, entries in state["optimizer"].items():
        for k, v in entries.items():
            if isinstance(v, Tensor):
                arrays[f"optimizer/{i}/{k}"] = v
            else:
                other.append([int(i), k, v])
    meta = {
        "step": state["step"],
        "scale": state["scale"],
        "history": state["history"],
        "optimizer_other": other,
        "fingerprint": fingerprint,
    }
    return write_npz(path, "checkpoint", arrays, meta)


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path : Path

    Returns
    -------
    state : dict
        For :meth:`SynthesisState.load_state_dict`.
    fingerprint : dict

    Raises
    ------
    ValueError
        Truncated, foreign, or not a checkpoint.
    """
    arrays, meta = read_npz(path, "checkpoint", name="checkpoint")
    needed = {"inputs", "rho", "active", "aug_generator"}
    if needed - set(arrays) or {"step", "scale", "history", "fingerprint"} - set(meta):
        raise ValueError(f"checkpoint {str(path)!r} is incomplete")
    optimizer: dict[int, dict[str, Any]] = {}
    for key, value in arrays.items():
        if key.startswith("optimizer/"):
            _, i, name = key.split("/", 2)
            optimizer.setdefault(int(i), {})[name] = value
    for i, name, value in meta.get("optimizer_other", []):
        optimizer.setdefault(int(i), {})[name] = value
    state = {k: arrays[k] for k in needed}
    state.update(optimizer=optimizer, step=meta["step"], scale=meta["scale"], history=meta["history"])
    return state, meta["fingerprint"]
