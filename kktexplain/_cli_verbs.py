"""``kktexplain synthesize | select | explain`` on the user's own model and data.

Each verb is a pair ``add_parser(subparsers)`` / ``run(args) -> int``, registered in
:mod:`kktexplain.cli`. Loading is in :mod:`kktexplain._cli_io`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._cli_options import (
    _common_options,
    _data_options,
    _model_options,
    _param_names,
    _synthesis_options,
    _synthesis_settings,
    positive_int,
)
from ._cli_run import guarded
from ._errors import NonFiniteError
from ._validation import check_positive

__all__ = ["VERBS"]


def _prepare(args: argparse.Namespace):
    from ._cli_io import load_data, load_model
    from ._model_info import token_layer

    model = load_model(args.model, args.weights).to(args.device)
    data = None
    if getattr(args, "data", None):
        tokens = token_layer(model) is not None
        data = load_data(args.data, args.labels, args.limit, args.grayscale, token_ids=tokens)
    return model, data


def _write(result, out: str, checkpoint: str | None = None) -> int:
    """Save ``result`` to ``out`` and print its summary; say on stderr why a partial one stopped.

    Parameters
    ----------
    result : DSVResult
    out : str
        The ``--out`` path.
    checkpoint : str, optional
        The ``--checkpoint`` path of the run, if any (how an interrupted run resumes).

    Returns
    -------
    int
        The exit status: 0, 130 for an interrupted run, 1 for one stopped by a NaN or inf.
    """
    path = result.save(out)
    status = _summary(result, path)
    stopped = result.settings.get("stopped")
    if not (result.partial and stopped):
        return status
    step, steps = stopped.get("step"), result.settings.get("steps")
    if stopped.get("reason") == "non-finite":  # resuming would meet the same NaN: not suggested
        print(
            f"kktexplain: the model produced NaN or inf in {stopped.get('term')!r} at step {step} of "
            f"{steps}: {path} holds the partial result of the last good step; check the model, or "
            "lower --lr or bound the inputs with --input-range",
            file=sys.stderr,
        )
        return 1
    advice = (
        f"run the same command to resume from step {step} (its state is in --checkpoint {checkpoint!r})"
        if checkpoint
        else "the same command would start again at step 0: pass --checkpoint PATH to make a run resumable"
    )
    print(
        f"kktexplain: interrupted after {step} of {steps} steps: {path} holds a partial result; {advice}",
        file=sys.stderr,
    )
    return 130


def _summary(result, path) -> int:
    summary = {
        "file": str(path),
        "mode": result.settings.get("mode"),
        "n": len(result.lambdas),
        "input_shape": result.settings.get("input_shape"),
        "stationarity_cosine": result.kkt.stationarity.get("cosine"),
        "feasibility": float(result.kkt.feasible.float().mean()),
        "lambda_sum": float(result.lambdas.sum()),
    }
    print(json.dumps(summary, indent=2, default=str))
    return 0


# ---------------------------------------------------------------------------- synthesize
def _synthesize_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synthesize",
        help="synthesise the deep support vectors of your model (DeepKKT)",
        description="Optimise inputs and multipliers under the DeepKKT conditions and save the DSVs.",
    )
    _model_options(p)
    _data_options(p, False, "samples to start from with --init real or other")
    p.add_argument("--n-per-class", type=int, default=10, help="candidates per class (default 10)")
    p.add_argument("--classes", type=int, nargs="+", default=None, help="synthesise only these class indices")
    p.add_argument(
        "--init",
        choices=("noise", "real", "other"),
        default="noise",
        help="start from noise, real samples of every class, or other data (needs --data)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="candidates per chunk of a step (exact; bounds memory; default all at once)",
    )
    p.add_argument(
        "--lambda-solve-every",
        type=int,
        default=None,
        help="solve λ exactly for the current inputs every K steps and after the last (default: never)",
    )
    p.add_argument(
        "--lr-schedule",
        choices=("constant", "cosine"),
        default="constant",
        help="step sizes: constant (default) or a half cosine down to 0 at the last step",
    )
    _synthesis_options(p)
    p.add_argument(
        "--checkpoint", default=None, help="a file to resume from and save the run's state to (.npz)"
    )
    p.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=None,
        help="with --checkpoint: save the state every N steps too, so that a killed run (out of "
        "memory, a scheduler's hard limit) resumes from there (default: only when stopped and at the end)",
    )
    _common_options(p)


def _synthesize(args: argparse.Namespace) -> int:
    from . import DeepSupportVectors

    if args.init != "noise" and not args.data:
        raise ValueError(f"--init {args.init} starts from samples: it needs --data")
    if args.checkpoint_every is not None and not args.checkpoint:
        raise ValueError("--checkpoint-every saves to --checkpoint: pass --checkpoint PATH too")
    model, data = _prepare(args)
    explainer = DeepSupportVectors(
        n_per_class=args.n_per_class,
        init=args.init,
        lambda_max=args.lambda_max,
        param_names=_param_names(args.param_names),
        batch_size=args.batch_size,
        lambda_solve_every=args.lambda_solve_every,
        lr_schedule=args.lr_schedule,
        classes=args.classes,
        seed=args.seed,
        progress=not args.no_progress,
        **_synthesis_settings(args),
    )
    try:
        result = explainer.attribute(
            model,
            init_data=data if args.init != "noise" else None,
            input_shape=args.input_shape,
            checkpoint=args.checkpoint,
            checkpoint_every=args.checkpoint_every,
        )
    except NonFiniteError as e:
        if e.result is None:
            raise
        result = e.result  # the last good state, marked partial: written and explained as such
    return _write(result, args.out, args.checkpoint)


# ---------------------------------------------------------------------------- select
def _select_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "select",
        help="score real samples by their multiplier λ (which training samples support the model)",
        description="Solve the multipliers λ >= 0 of fixed samples from the stationarity condition.",
    )
    _model_options(p)
    _data_options(p, True, "the samples to score, with labels")
    p.add_argument(
        "--projection-dim",
        type=int,
        default=None,
        help="sketch per-sample gradients to this many dimensions (default exact)",
    )
    p.add_argument(
        "--sketch",
        choices=("count", "kronecker"),
        default="count",
        help="with --projection-dim: 'count' sketches the per-sample gradients (any model); "
        "'kronecker' projects them layer by layer without forming them (faster; Linear, Conv, "
        "norm layers only). Default count",
    )
    p.add_argument(
        "--refit-dim",
        type=int,
        default=None,
        help="with --projection-dim: re-solve the support's λ from a wider sketch of its rows only "
        "(e.g. 16384; default: one stage)",
    )
    p.add_argument("--chunk-size", type=int, default=256, help="samples per gradient chunk (default 256)")
    p.add_argument(
        "--offload-dir",
        default=None,
        help="keep the per-sample gradient matrix in a temporary file in this folder and solve by "
        "streaming over it: memory does not grow with the number of samples (one process)",
    )
    p.add_argument("--ridge", type=float, default=None, help="spread λ over similar samples (e.g. 1e-3)")
    p.add_argument(
        "--multipliers",
        choices=("fit", "equal"),
        default="fit",
        help="'fit' solves λ (sparse, best completeness); 'equal' gives every sample the one "
        "multiplier of weight-decay training (one pass, no solve; ranks proponents and "
        "mislabels better). Default fit",
    )
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="local processes to shard the per-sample gradients over (torch.distributed, gloo; "
        "each loads the model and data, computes its share of the rows, and the rows are "
        "gathered before one solve; default 1). Across machines, run this verb under torchrun",
    )
    _common_options(p)


def _select_result(args: argparse.Namespace, progress: bool):
    """Load the model and data named by ``args`` and run selection (in this process's group)."""
    from . import DeepSupportVectors

    model, (x, y) = _prepare(args)
    if y is None:
        raise ValueError(
            "select needs labels: --data with labels (y, labels or Y in the .npz, a dataset) or --labels"
        )
    explainer = DeepSupportVectors(
        objective=args.objective,
        lambda_max=args.lambda_max,
        param_names=_param_names(args.param_names),
        projection_dim=args.projection_dim,
        sketch=args.sketch,
        chunk_size=args.chunk_size,
        ridge=args.ridge,
        multipliers=args.multipliers,
        refit_dim=args.refit_dim,
        offload_dir=args.offload_dir,
        seed=args.seed,
        progress=progress,
    )
    return explainer.attribute(model, candidates=x, labels=y, input_shape=args.input_shape)


def _select(args: argparse.Namespace) -> int:
    nproc = args.nproc
    check_positive("--nproc", nproc, integer=True)
    if nproc == 1:
        return _write(_select_result(args, not args.no_progress), args.out)
    from ._cli_sharded import select_sharded

    return select_sharded(args, nproc)


# ---------------------------------------------------------------------------- explain
def _explain_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="explain decisions by the support vectors that push for and against them",
        description=(
            "Read a result of synthesize or select and explain the model's decisions on inputs: "
            "writes explanation.html (plotly, self-contained), one PNG panel per decision and "
            "explanation.json."
        ),
    )
    _model_options(p)
    p.add_argument("--result", required=True, help="a result file of synthesize or select (.npz)")
    _data_options(p, True, "the inputs whose decisions are explained")
    p.add_argument(
        "--index", type=int, nargs="+", default=None, help="rows of --data to explain (default 0 1 2)"
    )
    p.add_argument("--k", type=int, default=5, help="supporting and opposing vectors shown (default 5)")
    p.add_argument("--target", type=int, default=None, help="class to explain (default: the prediction)")
    p.add_argument("--no-maps", action="store_true", help="skip the feature maps (faster)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.add_argument("--out", required=True, help="folder to write explanation.html, PNGs and JSON into")


def _explain(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from . import DSVResult

    result = DSVResult.load(args.result)
    model, (x, _) = _prepare(args)
    rows = args.index if args.index is not None else list(range(min(3, len(x))))
    bad = [r for r in rows if not 0 <= r < len(x)]
    if bad:
        raise ValueError(f"--index {bad} out of range for {len(x)} inputs in --data")
    if len(set(rows)) != len(rows):  # one panel per index: a repeat would overwrite its own
        raise ValueError(f"--index repeats an input: {rows}")
    inputs = x[rows].to(args.device)
    if inputs.is_floating_point():
        rows_bad = [r for r, ok in zip(rows, torch.isfinite(inputs.flatten(1)).all(1).tolist()) if not ok]
        if rows_bad:
            raise ValueError(f"--data rows {rows_bad} (picked by --index) hold NaN or inf values")
    kwargs = {"maps": "none"} if args.no_maps else {}
    explanation = result.explain(
        model, inputs, target=args.target, k=args.k, progress=not args.no_progress, **kwargs
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    parts = [explanation.to_html(i, include_plotlyjs=(i == 0)) for i in range(len(rows))]
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>kktexplain explanation</title></head><body>"
    )
    page += "".join(f"<section><h2>input {r}</h2>{part}</section>" for r, part in zip(rows, parts))
    (out / "explanation.html").write_text(page + "</body></html>", encoding="utf-8")
    for i, r in enumerate(rows):
        fig = explanation.plot_panel(i)
        fig.savefig(out / f"explanation_{r}.png", dpi=100)
        plt.close(fig)
    summary = []
    for i, r in enumerate(rows):
        ns, no = explanation.shown(i)  # only contributions of the list's own sign
        summary.append(
            {
                "row": r,
                "prediction": int(explanation.prediction[i]),
                "target": int(explanation.target[i]),
                "supporting": explanation.supporting_indices[i, :ns].tolist(),
                "supporting_contributions": explanation.supporting_contributions[i, :ns].tolist(),
                "opposing": explanation.opposing_indices[i, :no].tolist(),
                "opposing_contributions": explanation.opposing_contributions[i, :no].tolist(),
                "residual": float(explanation.residual[i]),
            }
        )
    (out / "explanation.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    print(f"wrote {out / 'explanation.html'}, {len(rows)} PNG panels and explanation.json")
    return 0


VERBS = {
    "synthesize": (_synthesize_parser, guarded("synthesize", _synthesize)),
    "select": (_select_parser, guarded("select", _select)),
    "explain": (_explain_parser, guarded("explain", _explain)),
}
"""Verb name to ``(add_parser(subparsers), run(args) -> exit status)``."""
