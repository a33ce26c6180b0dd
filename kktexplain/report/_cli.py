"""``kktexplain report``: the argparse wiring of :func:`kktexplain.report.write_html`."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import numpy as np
import torch

from .._cli_options import non_negative_int, positive_int

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``report`` verb to the console script's sub-parsers.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``parser.add_subparsers()``.

    Returns
    -------
    argparse.ArgumentParser
    """
    p = subparsers.add_parser(
        "report",
        help="write a self-contained HTML audit page from saved results",
        description=(
            "One HTML file (plotly inlined, opens offline) with the DSV gallery, the KKT residuals "
            "with verdicts, the synthesis history, Σλ per class, the top/bottom-λ samples, likely "
            "mislabels and per-decision explanations. Sections that need a model are left out "
            "when --model is not given."
        ),
    )
    p.add_argument("--synthesis", help="a synthesis result written by DSVResult.save (.npz)")
    p.add_argument("--selection", help="a selection result written by DSVResult.save (.npz)")
    p.add_argument("--model", help="the model as module:factory (a callable returning an nn.Module)")
    p.add_argument("--weights", help="the model's weights: .safetensors or a state dict (weights_only)")
    p.add_argument(
        "--inputs",
        help="test data: an .npz with inputs under 'x' (or 'inputs') and optional labels under 'y' "
        "(or 'labels'), or any data spec the other verbs' --data accepts; used for the per-class "
        "accuracy and the explained decisions (needs --model)",
    )
    p.add_argument(
        "--explain", type=non_negative_int, default=3, help="explain the first N test inputs (default 3)"
    )
    p.add_argument("--k", type=positive_int, default=5, help="supporting and opposing vectors per decision")
    p.add_argument("--classes", type=int, nargs="+", default=None, help="class indices shown (default all)")
    p.add_argument("--class-names", nargs="+", default=None, help="one name per class")
    p.add_argument("--per-page", type=int, default=10, help="classes per gallery page")
    p.add_argument(
        "--title",
        default="kktexplain audit report",
        help="the page's title, shown in the browser tab and as its heading (default: %(default)s)",
    )
    p.add_argument("--out", default="report.html", help="the HTML file to write (default report.html)")
    return p


def _shared_io():
    """The loaders shared by the other verbs (``kktexplain._cli_io``), or None where absent."""
    try:
        from .. import _cli_io
    except ImportError:
        return None
    return _cli_io if hasattr(_cli_io, "load_model") and hasattr(_cli_io, "load_data") else None


def _load_data(spec: str, token_ids: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Test inputs and optional labels: the shared loader, else an ``.npz`` with ``x`` and ``y``."""
    io = _shared_io()
    if io is not None:
        return io.load_data(spec, token_ids=token_ids)
    with np.load(spec, allow_pickle=False) as z:
        x_key = next((k for k in ("x", "inputs") if k in z), None)
        if x_key is None:
            raise ValueError(f"--inputs {spec!r} must hold the inputs as 'x' (or 'inputs'), has {list(z)}")
        x = torch.from_numpy(z[x_key]).float()
        y_key = next((k for k in ("y", "labels") if k in z), None)
        return x, (torch.from_numpy(z[y_key]).long() if y_key else None)


def _load_model(spec: str, weights: str | None) -> torch.nn.Module:
    """``module:factory`` and optional weights (safetensors, or a state dict with weights_only).

    Uses the shared loader of the other verbs when present (it also reads TorchScript files).
    """
    io = _shared_io()
    if io is not None:
        return io.load_model(spec, weights)
    if ":" not in spec:
        raise ValueError(f"--model must be module:factory, got {spec!r}")
    mod_name, attr = spec.split(":", 1)
    if "" not in sys.path:
        sys.path.insert(0, "")
    factory = getattr(importlib.import_module(mod_name), attr)
    model = factory() if callable(factory) and not isinstance(factory, torch.nn.Module) else factory
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"--model {spec} must give an nn.Module, got {type(model).__name__}")
    if weights:
        if weights.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(weights)
        else:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    return model.eval()


def run(args: argparse.Namespace) -> int:
    """Run ``kktexplain report`` with parsed arguments.

    Parameters
    ----------
    args : argparse.Namespace
        From the parser of :func:`add_parser`.

    Returns
    -------
    int
        0 on success, 2 on a usage or input error (printed to stderr).
    """
    from .. import DSVResult
    from ._html import write_html

    try:
        if not args.synthesis and not args.selection:
            raise ValueError("give --synthesis and/or --selection (files written by DSVResult.save)")
        synthesis = DSVResult.load(args.synthesis) if args.synthesis else None
        selection = DSVResult.load(args.selection) if args.selection else None
        for flag, res, mode in (
            ("--synthesis", synthesis, "synthesis"),
            ("--selection", selection, "selection"),
        ):
            found = None if res is None else res.settings.get("mode", mode)
            if found is not None and found != mode:
                raise ValueError(f"{flag} holds a {found} result; pass it as --{found}")
        model = _load_model(args.model, args.weights) if args.model else None
        test_data = explain_inputs = None
        if args.inputs:
            if model is None:
                print(
                    "kktexplain report: --inputs needs --model; skipping accuracy and explanations",
                    file=sys.stderr,
                )
            else:
                from .._model_info import token_layer

                x, y = _load_data(args.inputs, token_ids=token_layer(model) is not None)
                if y is not None and y.ndim == 1:
                    test_data = (x, y.long())
                if args.explain > 0:
                    explain_inputs = x[: args.explain]
        elif model is None:
            print(
                "kktexplain report: no --model: self-influence, accuracy and explanations are left out",
                file=sys.stderr,
            )
        out = write_html(
            args.out,
            synthesis=synthesis,
            selection=selection,
            model=model,
            test_data=test_data,
            explain_inputs=explain_inputs,
            k=args.k,
            class_names=args.class_names,
            classes=args.classes,
            per_page=args.per_page,
            title=args.title,
        )
    except (FileNotFoundError, ValueError, TypeError, KeyError, ImportError, AttributeError) as e:
        print(f"kktexplain report: {e}", file=sys.stderr)
        return 2
    print(f"wrote {Path(out)}")
    return 0
