"""The faithfulness evaluations that need no retraining, on the user's own model and data."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .._model_info import cast_inputs, missing_argument, model_device, model_dtype
from .._model_state import eval_mode
from .._validation import check_positive

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
    parts: Sequence[str] | str = USER_PARTS,
    param_names: Sequence[str] | str | None = None,
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
    parts : str or sequence of str, default=USER_PARTS
        One part, or any of ``"readiness"`` (:func:`~kktexplain.kkt_readiness` on ``train``),
        ``"fidelity"`` (how well the expansion reproduces the model on ``test``, for the scope
        and for every parameter, fitted multipliers), ``"identical_class"``,
        ``"randomization"`` and ``"timing"`` (one ``explain`` call, one influence query against
        TracInCP's).
    param_names : sequence of str or "free", optional
        The scope of the expansion, checked against the model's parameters before any part
        runs; default the model's output ``nn.Linear`` (its weight, and its bias where it has
        one; :func:`~kktexplain.attr._baselines.last_linear`), else ``"free"``.
    n_identical : int, default=1000
        Test inputs (the first ones, at most ``M``) of the identical-class test and of
        ``fidelity``; at least 1.
    n_randomization : int, default=20
        Test inputs (the first ones, at most ``M``) of the randomization check; at least 1.
    batch_size : int, default=256
        Batch size of every method; at least 1.
    compare_tracin : bool, default=True
        Run captum's TracInCP beside ours (identical-class test and timing).
    seed : int, default=0
    progress : bool, default=True
        Print what each part found.

    Returns
    -------
    dict
        What was written to ``evaluation.json``: ``n_test`` is ``M``, ``n_test_used`` how many
        test inputs each part that ran read; ``randomization_left_out`` the modules the
        randomization cascade could not re-initialise
        (:func:`~kktexplain.attr._randomization.cascade_layers`).

    Raises
    ------
    ValueError
        For a part not in :data:`USER_PARTS`, ``train`` and ``test`` of other shapes, an empty
        ``train`` or ``test``, ``param_names`` that are not parameters of the model, or
        ``n_identical``, ``n_randomization`` or ``batch_size`` below 1.
    TypeError
        For ``n_identical``, ``n_randomization`` or ``batch_size`` not an int, a
        ``param_names`` string other than ``"free"``, or a model whose forward needs more
        arguments than the inputs (evaluate_model does not support
        ``additional_forward_args``).
    """
    from .._explainer import DeepSupportVectors
    from .._readiness import kkt_readiness
    from .._scope import scoped_model
    from ._baselines import last_linear_scope
    from ._evaluate import evaluate_identical_class
    from ._figures import evaluation_figures
    from ._influence import SupportVectorInfluence
    from ._protocol import _fidelity_rows, time_queries
    from ._randomization import cascade_layers, evaluate_randomization

    if isinstance(parts, str):
        parts = (parts,)
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
    if len(x) == 0 or len(test) == 0:
        raise ValueError(f"train and test must hold at least one input each, got {len(x)} and {len(test)}")
    check_positive("n_identical", n_identical, integer=True)
    check_positive("n_randomization", n_randomization, integer=True)
    check_positive("batch_size", batch_size, integer=True)
    n_identical, n_randomization, batch_size = int(n_identical), int(n_randomization), int(batch_size)
    device, dtype = model_device(model), model_dtype(model)
    try:
        with torch.no_grad(), eval_mode(model):
            train_pred = torch.cat(
                [
                    model(cast_inputs(x[i : i + batch_size], device, dtype)).argmax(1).cpu()
                    for i in range(0, len(x), batch_size)
                ]
            )
    except TypeError as e:
        if not missing_argument(e):
            raise
        raise TypeError(
            "evaluate_model does not support additional_forward_args: it calls model(inputs) "
            f"with the inputs alone, and the model's forward needs more ({e})"
        ) from e
    if param_names is None:
        try:
            param_names = last_linear_scope(model, x)
        except ValueError:  # no nn.Linear: the default scope of selection
            param_names = "free"
    if isinstance(param_names, str) and param_names != "free":
        raise TypeError(f"param_names must be a list of parameter names or 'free', got {param_names!r}")
    scope = list(param_names) if not isinstance(param_names, str) else param_names
    # every part reads the scope: a name that is not a parameter is refused here, before any runs
    in_scope = (
        sum(t.numel() for t in scoped_model(model, scope).theta.values()) if isinstance(scope, list) else None
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_first = min(n_identical, len(test))
    result: dict[str, Any] = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "seed": seed,
        "n_train": len(x),
        "n_test": len(test),
        "n_test_used": {},
        "param_names": scope,
    }

    def save() -> None:
        (out / "evaluation.json").write_text(json.dumps(result, indent=2, default=str))

    def log(msg: str) -> None:
        if progress:
            print(f"[evaluate] {msg}", flush=True)

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

        total = sum(p.numel() for p in model.parameters())
        # exact where the per-sample gradients fit in memory, sketched beyond (as the explanations)
        scopes = {"all": (None, None, auto_sketch_dim(len(x), total))}
        if in_scope is not None:
            scopes = {"scope": (scope, None, auto_sketch_dim(len(x), in_scope)), **scopes}
        rows = _fidelity_rows("model", model, x, y, test[:n_first], scopes)
        result["fidelity"] = rows
        result["n_test_used"]["fidelity"] = n_first
        for row in rows:
            log(f"fidelity ({row['scope']}): argmax agreement {row['argmax_agreement']:.3f}")
        save()
    support = svi = None
    if {"identical_class", "randomization", "timing"} & set(parts):
        start = time.perf_counter()
        explainer = DeepSupportVectors(
            param_names=scope, multipliers="equal", chunk_size=batch_size, progress=False
        )
        support = explainer.attribute(model, candidates=x, labels=y)
        svi = SupportVectorInfluence(model, support, chunk_size=batch_size)
        _ = svi.expansion.cache  # the support gradients' cache, outside the timed queries
        result["support_seconds"] = time.perf_counter() - start
    if "identical_class" in parts:
        result["identical_class"] = evaluate_identical_class(
            model, support, test[:n_first], batch_size, compare_tracin=compare_tracin, influence=svi
        )
        result["n_test_used"]["identical_class"] = n_first
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
        result["n_test_used"]["timing"] = 1
        log(f"timing: {json.dumps(rows)}")
        save()
    if "randomization" in parts and not test.is_floating_point():
        result["randomization"] = {"skipped": "integer inputs (token ids) have no feature attributions"}
        log("randomization: skipped (integer inputs have no feature attributions)")
    elif "randomization" in parts:
        result["randomization_left_out"] = cascade_layers(model)[1]
        try:
            result["randomization"] = evaluate_randomization(
                model, support, test[:n_randomization], seed=seed
            )
            result["n_test_used"]["randomization"] = min(n_randomization, len(test))
        except ValueError as e:  # constant original maps or nothing to reset: the check is undefined
            result["randomization"] = {"skipped": str(e)}
        log(f"randomization: {json.dumps(result['randomization'])}")
        save()
    save()
    evaluation_figures(result, out)
    return result
