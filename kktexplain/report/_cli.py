"""``kktexplain report``: the argparse wiring of :func:`kktexplain.report.write_html`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._cli_options import _reading_options, cli_message, non_negative_int, positive_int

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
    p.add_argument(
        "--model",
        help="the model as module:factory (a callable returning an nn.Module, with --weights) or a "
        "TorchScript file",
    )
    p.add_argument("--weights", help="the model's weights: .safetensors or a state dict (weights_only)")
    p.add_argument(
        "--inputs",
        help="test data: an .npz with inputs under 'x' (or 'inputs') and optional labels under 'y' "
        "(or 'labels'), or any data spec the other verbs' --data accepts; used for the per-class "
        "accuracy and the explained decisions (needs --model)",
    )
    _reading_options(p, "--inputs")
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
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return p


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
    from .._cli_io import load_data, load_model
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
        model = load_model(args.model, args.weights) if args.model else None
        test_data = explain_inputs = None
        if args.inputs:
            if model is None:
                print(
                    "kktexplain report: --inputs needs --model; skipping accuracy and explanations",
                    file=sys.stderr,
                )
            else:
                from .._model_info import token_layer

                x, y = load_data(
                    args.inputs,
                    args.labels,
                    limit=args.limit,
                    grayscale=args.grayscale,
                    token_ids=token_layer(model) is not None,
                )
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
            progress=not args.no_progress,
        )
    except (FileNotFoundError, ValueError, TypeError, KeyError, ImportError, AttributeError) as e:
        print(f"kktexplain report: {cli_message(e)}", file=sys.stderr)
        return 2
    print(f"wrote {Path(out)}")
    return 0
