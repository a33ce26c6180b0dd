"""Reference models whose trained weights ship inside the package (no training on first use).

Each shipped model is a ``<name>.safetensors`` file of its ``state_dict`` and a ``<name>.json``
card in ``kktexplain/models/weights/``: the recipe (the :class:`ReferenceSpec` it was trained
with), the seed, the measured test accuracy, and the command that reproduces it
(``python -m kktexplain.models.train_shipped``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

__all__ = ["SHIPPED_DIR", "shipped_card", "load_shipped_model"]

SHIPPED_DIR = Path(__file__).resolve().parent / "weights"


def _paths(name: str, folder: Path | None = None) -> tuple[Path, Path]:
    folder = SHIPPED_DIR if folder is None else Path(folder)
    return folder / f"{name}.safetensors", folder / f"{name}.json"


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    str
    """
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def shipped_card(name: str, folder: str | Path | None = None) -> dict | None:
    """The JSON card of a shipped model, or ``None`` when it is not shipped.

    A card whose recipe differs from ``REFERENCE_MODELS[name]`` (the spec was changed after
    the weights were made) counts as not shipped, so the caller trains from the new spec.

    Parameters
    ----------
    name : str
        A key of ``REFERENCE_MODELS``.
    folder : str or Path, optional
        Where to look; default the package's ``models/weights`` folder.

    Returns
    -------
    dict or None
    """
    from ._cache import REFERENCE_MODELS

    weights, card_path = _paths(name, folder)
    if name not in REFERENCE_MODELS or not (weights.is_file() and card_path.is_file()):
        return None
    card = json.loads(card_path.read_text())
    if card.get("spec") != json.loads(json.dumps(asdict(REFERENCE_MODELS[name]))):
        return None
    return card


def load_shipped_model(
    name: str, folder: str | Path | None = None, check_hash: bool = True
) -> tuple[nn.Module, dict] | None:
    """A shipped reference model with its card, or ``None`` when it is not shipped.

    Parameters
    ----------
    name : str
        A key of ``REFERENCE_MODELS``.
    folder : str or Path, optional
        Where to look; default the package's ``models/weights`` folder.
    check_hash : bool, default=True
        Refuse weights whose SHA-256 differs from the card's (a ``ValueError``).

    Returns
    -------
    (nn.Module, dict) or None
        The model in eval mode on the CPU, and its card (with ``"source": "package"``);
        ``None`` for a reference model whose weights are not in ``folder`` (train it with
        :func:`load_reference_model`).

    Raises
    ------
    ValueError
        For a ``name`` that is not a reference model (a key of ``REFERENCE_MODELS``), or
        weights whose hash differs from the card's.
    """
    from safetensors.torch import load_file

    from ._cache import _SHAPES, REFERENCE_MODELS, _build, check_reference_name

    check_reference_name(name)
    card = shipped_card(name, folder)
    if card is None:
        return None
    weights, _ = _paths(name, folder)
    if check_hash and card.get("sha256") and sha256(weights) != card["sha256"]:
        raise ValueError(f"{weights}: SHA-256 differs from the one in its card; the file was changed")
    spec = REFERENCE_MODELS[name]
    model = _build(spec, *_SHAPES[spec.dataset])
    model.load_state_dict(load_file(str(weights), device="cpu"))
    return model.eval(), {**card, "source": "package"}


def save_shipped_model(model: nn.Module, card: dict, name: str, folder: str | Path | None = None) -> Path:
    """Write ``model``'s weights as safetensors and ``card`` (plus the file's SHA-256) as JSON.

    Parameters
    ----------
    model : nn.Module
    card : dict
        JSON-serialisable.
    name : str
    folder : str or Path, optional
        Default the package's ``models/weights`` folder.

    Returns
    -------
    Path
        The ``.safetensors`` file.
    """
    from safetensors.torch import save_file

    weights, card_path = _paths(name, folder)
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights), metadata={"name": name, "torch": torch.__version__})
    card = {**card, "weights_bytes": weights.stat().st_size, "sha256": sha256(weights)}
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return weights
