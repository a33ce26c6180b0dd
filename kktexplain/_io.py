"""The one way kktexplain writes files: atomic, versioned, pickle-free ``.npz``.

Results, checkpoints and gradient shards are ``.npz`` archives of plain arrays plus one
``__header__`` array holding JSON: ``{"format": "kktexplain", "version": 1, "kind": ...,
"meta": ...}``. A file is written to a temporary name in the same folder and moved into place
with :func:`os.replace`, so a crash leaves the previous file intact, never a half-written one.
Reading never unpickles, and refuses truncated, foreign or newer files with a ``ValueError``.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "FORMAT",
    "VERSION",
    "KINDS",
    "npz_path",
    "check_writable",
    "check_output_file",
    "check_output_folder",
    "write_npz",
    "read_npz",
]

FORMAT = "kktexplain"
VERSION = 1
KINDS = ("result", "checkpoint", "gradients", "distilled")
_HEADER = "__header__"


def npz_path(path: str | os.PathLike) -> Path:
    """``path`` with the ``.npz`` suffix that numpy would add (``"x"`` and ``"x.npz"`` agree).

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    Path
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or a PathLike, got {type(path).__name__}")
    p = Path(path)
    return p if p.suffix == ".npz" else p.with_name(p.name + ".npz")


def check_writable(path: str | os.PathLike, name: str = "path") -> Path:
    """The ``.npz`` path, after checking that it can be written (``ValueError`` naming ``name``).

    Parameters
    ----------
    path : str or PathLike
    name : str, default="path"
        The parameter named in errors.

    Returns
    -------
    Path
    """
    if not isinstance(path, str | os.PathLike) or str(path) == "":
        raise TypeError(f"{name} must be a non-empty str or PathLike, got {type(path).__name__} {path!r}")
    p = npz_path(path)
    if Path(path).is_dir():
        raise ValueError(f"{name} {str(path)!r} is a directory, not a file")
    return check_output_file(p, name)


def check_output_file(path: str | os.PathLike, name: str = "path") -> Path:
    """A file path that can be written: not a folder, in an existing writable folder.

    Parameters
    ----------
    path : str or PathLike
    name : str, default="path"
        The parameter (or command-line option) named in errors.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        Naming ``name`` and what is wrong.
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{name} {str(p)!r} is a directory, not a file")
    if not p.parent.is_dir():
        raise ValueError(f"{name} {str(p)!r}: the folder {str(p.parent)!r} does not exist")
    if not os.access(p.parent, os.W_OK):
        raise ValueError(f"{name} {str(p)!r}: the folder {str(p.parent)!r} is not writable")
    if p.exists() and not os.access(p, os.W_OK):
        raise ValueError(f"{name} {str(p)!r} exists and is not writable")
    return p


def check_output_folder(path: str | os.PathLike, name: str = "path") -> Path:
    """As :func:`check_output_file`, for a folder: one that exists and is writable, or can be
    made (its nearest existing parent is writable). Returns the ``Path``; raises ``ValueError``
    naming ``name``."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{name} {str(p)!r} is a file, not a folder")
    existing = p
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{name} {str(p)!r}: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK):
        raise ValueError(f"{name} {str(p)!r}: the folder {str(existing)!r} is not writable")
    return p


def _numpy(value: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def write_npz(
    path: str | os.PathLike, kind: str, arrays: dict[str, Tensor | np.ndarray], meta: dict[str, Any]
) -> Path:
    """Write ``arrays`` and JSON ``meta`` to ``path`` (``.npz`` appended if missing), atomically.

    Parameters
    ----------
    path : str or PathLike
    kind : {"result", "checkpoint", "gradients", "distilled"}
    arrays : dict of str to Tensor or ndarray
        Plain (non-object) arrays.
    meta : dict
        JSON-serialisable; other objects are written as ``str``.

    Returns
    -------
    Path
        Where the file is.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if _HEADER in arrays:
        raise ValueError(f"{_HEADER!r} is a reserved array name")
    p = check_writable(path)  # a missing folder named, not mkstemp's hidden temporary file
    header = {"format": FORMAT, "version": VERSION, "kind": kind, "meta": meta}
    payload = {k: _numpy(v) for k, v in arrays.items()}
    payload[_HEADER] = np.frombuffer(json.dumps(header, default=str).encode(), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open() would (umask)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def _legacy_header(files: list[str]) -> bool:
    """A result written before the format was versioned (a ``meta`` array, no header)."""
    return "meta" in files and {"inputs", "labels", "lambdas", "active"} <= set(files)


def read_npz(
    path: str | os.PathLike, kind: str, name: str = "path"
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read a file written by :func:`write_npz`.

    Parameters
    ----------
    path : str or PathLike
        With or without the ``.npz`` suffix.
    kind : {"result", "checkpoint", "gradients", "distilled"}
        What the file must hold.
    name : str, default="path"
        The parameter named in errors (e.g. ``"checkpoint"``).

    Returns
    -------
    arrays : dict of str to Tensor
    meta : dict

    Raises
    ------
    TypeError
        ``path`` is not a str or PathLike.
    FileNotFoundError
        Neither ``path`` nor ``path + ".npz"`` exists.
    ValueError
        The file is truncated, not a kktexplain file, of another kind, or from a newer version.
    """
    if not isinstance(path, str | os.PathLike) or str(path) == "":
        raise TypeError(f"{name} must be a non-empty str or PathLike, got {type(path).__name__} {path!r}")
    p = npz_path(path)  # the file save(path) writes, where it exists; else path as given
    if not p.is_file():
        p = Path(path)
    if not p.is_file():
        tried = "" if str(npz_path(path)) == str(path) else f" (nor {str(npz_path(path))!r})"
        raise FileNotFoundError(f"{name}: no such file: {str(path)!r}{tried}")
    where = f"{name} {str(p)!r}"
    try:
        loaded = np.load(p, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError(f"{where} is a single array, not a kktexplain file")
        with loaded as f:
            files = list(f.files)
            if _HEADER in files:
                header = json.loads(bytes(f[_HEADER]).decode())
            elif kind == "result" and _legacy_header(files):
                header = {"format": FORMAT, "version": 0, "kind": "result"}
                header["meta"] = json.loads(bytes(f["meta"]).decode())
                files.remove("meta")
            else:
                raise ValueError(f"{where} is not a kktexplain file (no {_HEADER!r} entry)")
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise ValueError(f"{where} is not a kktexplain file")
            if not isinstance(header.get("version"), int) or header["version"] > VERSION:
                raise ValueError(
                    f"{where} has format version {header.get('version')!r}; this kktexplain "
                    f"reads versions up to {VERSION}"
                )
            if header.get("kind") != kind:
                raise ValueError(f"{where} holds a {header.get('kind')!r}, not a {kind!r}")
            arrays = {k: torch.from_numpy(f[k].copy()) for k in files if k != _HEADER}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{where} is truncated or not a kktexplain file: {e}") from e
    except TypeError as e:  # an array torch cannot hold (strings, objects)
        raise ValueError(f"{where} holds an array that is not numeric: {e}") from e
    except ValueError as e:
        if str(e).startswith(where):
            raise
        # numpy's own text may advise allow_pickle: not for a file kktexplain never pickles
        cause = "it holds pickled objects" if "allow_pickle" in str(e) else str(e)
        raise ValueError(
            f"{where} is truncated or not a kktexplain file ({cause}); delete it or pass another path"
        ) from e
    return arrays, header.get("meta", {})
