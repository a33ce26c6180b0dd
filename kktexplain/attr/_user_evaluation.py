"""The faithfulness evaluations that need no retraining, on the user's own model and data."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .._model_info import cast_inputs, model_device, model_dtype
from .._model_state import eval_mode

__all__ = ["USER_PARTS", "evaluate_model"]

#: The parts :func:`evaluate_model` runs: those that need the model as it is. Mislabel detection
#: needs labels known to be flipped before training, and removal needs retraining: both are in
#: ``kktexplain evaluate`` without ``--model``, on reference problems.
USER_PARTS = ("readiness", "fidelity", "identical_class", "randomization", "timing")


def evaluate_model(
    model: nn.Module,
    train: tuple[Tensor, Tensor],
    test: Tensor,
    out: str | Path,
    parts: Sequence[str] = USER_PARTS,
    param_names: Sequence[str] | None = None,
    n_identical: int = 1000,
    n_randomization: int = 20,
    batch_size: int = 256,
    compare_tracin: bool = True,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate the per-decision explanations on a trained model, beside captum's TracInCP.

    The support set is ``train`` with the multiplier of weight-decay training (equal for every
    sample, ``multipliers="equal"``) in the scope ``param_names``, as in
    :func:`~kktexplain.attr.equal_multipliers`; ``fidelity`` also fits the multipliers
    (selection). Writes ``evaluation.json`` (and ``randomization.png``) into ``out``.

    Parameters
    ----------
    model : nn.Module
        The trained classifier, returning logits ``(N, C)``. Left as it was found.
    train : tuple of (Tensor, Tensor)
        Training inputs ``(N, *input_shape)`` and their labels ``(N,)``: the support set.
    test : Tensor of shape (M, *input_shape)
        Inputs whose decisions are explained.
    out : str or Path
        Output folder.
    parts : sequence of str, default=USER_PARTS
        Any of ``"readiness"`` (:func:`~kktexplain.kkt_readiness` on ``train``),
        ``"fidelity"`` (how well the expansion reproduces the model on ``test``, for the scope
        and for every parameter, fitted multipliers), ``"identical_class"``,
        ``"randomization"`` and ``"timing"`` (one ``explain`` call, one influence query against
        TracInCP's).
    param_names : sequence of str, optional
        The scope of the expansion; default the model's last ``nn.Linear`` (weight and bias),
        else ``"free"``.
    n_identical : int, default=1000
        Test inputs of the identical-class test (at most ``M``).
    n_randomization : int, default=20
        Test inputs of the randomization check.
    batch_size : int, default=256
        Batch size of every method.
    compare_tracin : bool, default=True
        Run captum's TracInCP beside ours (identical-class test and timing).
    seed : int, default=0
    progress : bool, default=True
        Print what each part found.

    Returns
    -------
    dict
        What was written to ``evaluation.json``.

    Raises
    ------
    ValueError
        For a part not in :data:`USER_PARTS`, or ``train`` and ``test`` of other shapes.
    """
    from .._explainer import DeepSupportVectors
    from .._readiness import kkt_readiness
    from ._baselines import last_linear
    from ._evaluate import evaluate_identical_class
    from ._figures import evaluation_figures
    from ._influence import SupportVectorInfluence
    from ._protocol import _fidelity_rows, time_queries
    from ._randomization import evaluate_randomization

    bad = [p for p in parts if p not in USER_PARTS]
    if bad:
        raise ValueError(
            f"parts must be among {USER_PARTS} for a model of your own (mislabel detection and "
            f"removal retrain: they run on the reference problems, without a model), got {bad}"
        )
    if not (isinstance(train, tuple | list) and len(train) == 2):
        raise TypeError("train must be a tuple (inputs, labels)")
    x, y = train
    if not isinstance(x, Tensor) or not isinstance(y, Tensor) or not isinstance(test, Tensor):
        raise TypeError("train's inputs and labels and test must be torch.Tensors")
    if y.ndim != 1 or len(y) != len(x):
        raise ValueError(f"train's labels must have shape ({len(x)},), got {tuple(y.shape)}")
    if tuple(test.shape[1:]) != tuple(x.shape[1:]):
        raise ValueError(
            f"test must hold inputs of train's shape {tuple(x.shape[1:])}, got {tuple(test.shape[1:])}"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if param_names is None:
        try:
            name, layer = last_linear(model)
            param_names = [f"{name}.weight"] + ([f"{name}.bias"] if layer.bias is not None else [])
        except ValueError:  # no nn.Linear: the default scope of selection
            param_names = "free"
    scope = list(param_names) if not isinstance(param_names, str) else param_names
    result: dict[str, Any] = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "seed": seed,
        "n_train": len(x),
        "n_test": len(test),
        "param_names": scope,
    }

    def save() -> None:
        (out / "evaluation.json").write_text(json.dumps(result, indent=2, default=str))

    def log(msg: str) -> None:
        if progress:
            print(f"[evaluate] {msg}", flush=True)

    device, dtype = model_device(model), model_dtype(model)
    with torch.no_grad(), eval_mode(model):
        train_pred = torch.cat(
            [
                model(cast_inputs(x[i : i + batch_size], device, dtype)).argmax(1).cpu()
                for i in range(0, len(x), batch_size)
            ]
        )
    result["train_accuracy"] = float((train_pred.cpu() == y.cpu()).double().mean())
    save()
    if "readiness" in parts:
        r = kkt_readiness(model, (x, y), param_names=scope, progress=bool(progress))
        result["readiness"] = {k: v for k, v in r.to_dict().items() if k != "per_layer_cosine"}
        agreement = "n/a" if r.argmax_agreement is None else f"{r.argmax_agreement:.3f}"
        log(f"readiness: {r.verdict} (cosine {r.cosine:.3f}, argmax agreement {agreement})")
        save()
    if "fidelity" in parts:
        from ..kkt._collect import auto_sketch_dim

        named = dict(model.named_parameters())
        in_scope = sum(named[k].numel() for k in scope) if isinstance(scope, list) else None
        total = sum(p.numel() for p in named.values())
        # exact where the per-sample gradients fit in memory, sketched beyond (as the explanations)
        scopes = {"all": (None, None, auto_sketch_dim(len(x), total))}
        if in_scope is not None:
            scopes = {"scope": (scope, None, auto_sketch_dim(len(x), in_scope)), **scopes}
        rows = _fidelity_rows("model", model, x, y, test[:n_identical], scopes)
        result["fidelity"] = rows
        for row in rows:
            log(f"fidelity ({row['scope']}): argmax agreement {row['argmax_agreement']:.3f}")
        save()
    support = svi = None
    if {"identical_class", "randomization", "timing"} & set(parts):
        start = time.perf_counter()
        explainer = DeepSupportVectors(
            param_names=param_names, multipliers="equal", chunk_size=batch_size, progress=False
        )
        support = explainer.attribute(model, candidates=x, labels=y)
        svi = SupportVectorInfluence(model, support, chunk_size=batch_size)
        _ = svi.expansion.cache  # the support gradients' cache, outside the timed queries
        result["support_seconds"] = time.perf_counter() - start
    if "identical_class" in parts:
        result["identical_class"] = evaluate_identical_class(
            model, support, test[:n_identical], batch_size, compare_tracin=compare_tracin, influence=svi
        )
        log(f"identical class: {json.dumps(result['identical_class'])}")
        save()
    if "timing" in parts:
        rows = time_queries(
            model,
            support,
            svi,
            test[:1],
            (x, y),
            batch_size,
            compare_tracin,
            "explain_one_input_seconds_median",
        )
        result["timing"] = rows
        log(f"timing: {json.dumps(rows)}")
        save()
    if "randomization" in parts and not test.is_floating_point():
        result["randomization"] = {"skipped": "integer inputs (token ids) have no feature attributions"}
        log("randomization: skipped (integer inputs have no feature attributions)")
    elif "randomization" in parts:
        try:
            result["randomization"] = evaluate_randomization(
                model, support, test[:n_randomization], seed=seed
            )
        except ValueError as e:  # constant original maps: the check is undefined
            result["randomization"] = {"skipped": str(e)}
        log(f"randomization: {json.dumps(result['randomization'])}")
        save()
    save()
    evaluation_figures(result, out)
    return result
