"""The ``kktexplain`` console script."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from ._cli_options import _int_at_least, check_outputs, cli_message, positive_int

__all__ = ["main"]

_PARTS = ("mislabels", "identical_class", "removal", "randomization", "fidelity", "timing")


def _verbs() -> dict[str, tuple[Callable, Callable]]:
    """Verb name to ``(add_parser(subparsers), run(args) -> exit status)``, in ``--help`` order.

    Adding a verb is one entry here (and its two functions wherever they live).
    """
    from ._cli_verbs import VERBS
    from .distill import _cli as distill_cli
    from .report import _cli as report_cli

    return {
        **VERBS,  # synthesize, select, explain on the user's own model and data
        "evaluate": (_evaluate_parser, _evaluate),
        "distill": (distill_cli.add_parser, distill_cli.run),
        "report": (report_cli.add_parser, report_cli.run),
        "demo": (_demo_parser, _demo),
        "sanity-check": (_check_parser, _check),
    }


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable]]:
    """The console script's parser and each verb's ``run``."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="kktexplain",
        description="Deep support vectors (DeepKKT) of a trained PyTorch classifier. "
        "Run `kktexplain VERB --help` for a verb's options.",
    )
    parser.add_argument("--version", action="version", version=f"kktexplain {__version__}")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    runs = {}
    for name, (add, run) in _verbs().items():
        add(sub)
        runs[name] = run
    return parser, runs


def main(argv: list[str] | None = None) -> int:
    """Run ``kktexplain <verb>``.

    Parameters
    ----------
    argv : list of str, optional
        Defaults to ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status.
    """
    parser, runs = build_parser()
    args = parser.parse_args(argv)
    try:
        check_outputs(args)  # before the work, not after it
        return runs[args.verb](args)
    except OSError as e:  # a file or folder the verb reads or writes: one line, no traceback
        where = f" {e.filename!r}" if getattr(e, "filename", None) else ""
        print(f"kktexplain {args.verb}: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except ValueError as e:  # bad input found deep in a verb (the verbs name their options)
        print(f"kktexplain {args.verb}: {e}", file=sys.stderr)
        return 2


def _demo_parser(sub) -> None:
    demo = sub.add_parser(
        "demo",
        help="audit of a Fashion-MNIST ConvNet: DSVs, selection, explanations, HTML report",
        description="Audit the shipped Fashion-MNIST ConvNet end to end (about two minutes on 2 CPU "
        "cores): synthesise DSVs, select λ over training images, explain test decisions, rank likely "
        "mislabels, and write report.html, figures and summary.json into --out.",
    )
    demo.add_argument("--out", default="kktexplain-demo", help="output folder (default kktexplain-demo)")
    demo.add_argument("--n-per-class", type=positive_int, default=10, help="DSVs per class (default 10)")
    demo.add_argument("--steps", type=int, default=None, help="synthesis steps (default 600)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument(
        "--model",
        default="fashion_mnist_small",
        choices=["fashion_mnist_small", "fashion_mnist_convnet"],
        help="the model audited (default fashion_mnist_small, shipped in the package; "
        "fashion_mnist_convnet is trained on first use, about 8 minutes on 2 idle cores, then cached)",
    )
    demo.add_argument(
        "--train",
        action="store_true",
        help="train the model from its recipe instead of loading its weights (then cached)",
    )
    demo.add_argument(
        "--n-select",
        type=positive_int,
        default=1000,
        help="training images whose λ selection computes (default 1000)",
    )
    demo.add_argument(
        "--n-explain", type=positive_int, default=3, help="test decisions explained (default 3)"
    )
    demo.add_argument(
        "--threads", type=positive_int, default=1, help="torch CPU threads (default 1: the model is tiny)"
    )
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    try:
        summary = run_demo(
            args.out,
            args.n_per_class,
            args.steps,
            args.seed,
            not args.no_progress,
            model=args.model,
            train=args.train,
            n_select=args.n_select,
            n_explain=args.n_explain,
            threads=args.threads,
        )
    except FileNotFoundError as e:
        print(f"kktexplain demo: {cli_message(e)}", file=sys.stderr)
        return 2
    s, sel = summary, summary["selection"]
    lines = [
        f"teacher {s['teacher']}: test accuracy {s['teacher_test_accuracy']:.2%} "
        f"on {s['teacher_test_images']:,} test images",
        f"synthesis: {s['n_dsv']} DSVs, {s['steps']} steps; primal feasibility "
        f"{s['primal_feasibility_rate']:.0%}; stationarity cosine {s['stationarity_cosine']:.3f}, "
        f"relative l1 {s['stationarity_rel_l1']:.3f}",
        f"selection: {sel['support_size']} of {sel['candidates']} training images with λ > 0; "
        f"stationarity cosine {sel['stationarity_cosine']:.3f}, relative l1 {sel['stationarity_rel_l1']:.3f}",
    ]
    for e in s["explanations"]:
        top = e["supporting"][0]
        lines.append(
            f"test #{e['test_index']} ({e['label']}) predicted {e['prediction']}: most supported by "
            f"train #{top['train_index']} ({top['label']})"
        )
    suspects = [
        f"train #{r['train_index']} labelled {r['label']}, predicted {r['prediction']}"
        for r in s["likely_mislabels"][:3]
    ]
    lines.append("likely mislabels: " + "; ".join(suspects))
    lines.append(f"wall time {s['wall_seconds']:.0f} s")
    print("\n".join(lines))
    print(f"wrote {args.out}/report.html, dsv_grid.png, history.png, summary.json, dsv.npz, selection.npz")
    return 0


def _check_parser(sub) -> None:
    check = sub.add_parser("sanity-check", help="DeepKKT vs sklearn's linear SVC on built-in datasets")
    check.add_argument("--json", required=True, help="where to write one row per dataset and C")
    check.add_argument(
        "--C",
        type=float,
        nargs="+",
        default=[0.1, 1.0, 10.0],
        help="SVC regularisation values (default 0.1 1 10)",
    )
    check.add_argument(
        "--weights",
        choices=["svc", "torch"],
        default="svc",
        help="linear model weights from sklearn's SVC or trained in torch (default svc)",
    )
    check.add_argument("--synth-steps", type=int, default=3000, help="synthesis steps (default 3000)")
    check.add_argument(
        "--synth-lr", type=float, default=None, help="step on the DSVs (default: scaled to each problem)"
    )
    check.add_argument(
        "--synth-optimizer", choices=("sgd", "adam"), default="sgd", help="synthesis optimiser (default sgd)"
    )
    check.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _check(args: argparse.Namespace) -> int:
    import math
    from pathlib import Path

    from .svm import run_sanity_suite

    folder = Path(args.json).resolve().parent
    bad_c = [c for c in args.C if not (math.isfinite(c) and c > 0)]
    problem = (
        f"--C must be finite and > 0, got {bad_c}"
        if bad_c
        else f"--json {args.json!r}: the folder {str(folder)!r} does not exist"
        if not folder.is_dir()
        else None
    )
    if problem is not None:  # before the suite runs, not after
        print(f"kktexplain sanity-check: {problem}", file=sys.stderr)
        return 2
    try:
        rows = run_sanity_suite(
            args.C,
            weights=args.weights,
            synth_steps=args.synth_steps,
            synth_lr=args.synth_lr,
            synth_optimizer=args.synth_optimizer,
            progress=not args.no_progress,
        )
    except (ValueError, TypeError) as e:
        print(f"kktexplain sanity-check: {cli_message(e)}", file=sys.stderr)
        return 2
    with open(args.json, "w") as f:
        json.dump(rows, f, indent=2)

    def num(value, spec: str) -> str:  # None: a field the row could not measure
        return "n/a" if value is None else format(value, spec)

    for row in rows:
        print(
            f"{row['dataset']:>24s} C={row['C']:<5g} F1={num(row['f1'], '.4f')} "
            f"pearson={num(row['pearson'], '.4f')} stat={num(row['stationarity_residual'], '.2e')} "
            f"margin_dev={num(row['margin_deviation'], '.3f')} "
            f"synth_active={num(row['synth_active_fraction'], '.2f')} "
            f"synth_stat={num(row['synth_stationarity_residual'], '.3f')}"
        )
    print(f"wrote {args.json}")
    return 0


# settings of the reference problems only (kktexplain evaluate without --model): None when not
# given, so that --model refuses them and run_evaluation's defaults apply
_REFERENCE_ONLY = ("n_train", "flip", "removal_tests", "removal_k")


def _at_least_two(text: str) -> int:
    """argparse type: an int >= 2 (a standard error needs two values)."""
    return _int_at_least(text, 2, "an integer >= 2")


def _open_fraction(text: str) -> float:
    """argparse type: a float strictly between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number strictly between 0 and 1, got {text!r}")
    return value


def _evaluate_parser(sub) -> None:
    ev = sub.add_parser(
        "evaluate",
        help="faithfulness of the per-decision explanations, beside captum's TracInCP",
        description=(
            "Mislabel detection and the identical-class test on a Fashion-MNIST ConvNet trained "
            "with flipped labels, removal faithfulness on a digits MLP retrained many times, the "
            "randomization sanity check, and how well the expansion reproduces the reference models. "
            "With --model, --data and --test-data: the parts that need no retraining (readiness, "
            "fidelity, identical_class, randomization, timing) on your own model."
        ),
    )
    ev.add_argument("--json", required=True, help="where to write the results (JSON)")
    ev.add_argument(
        "--out",
        default=None,
        help="folder for the figures and a copy of the results (default: evaluation/ beside --json)",
    )
    ev.add_argument(
        "--parts",
        nargs="+",
        default=None,
        help="subset of: " + " ".join(_PARTS) + " (with --model: readiness fidelity identical_class "
        "randomization timing)",
    )
    ev.add_argument(
        "--model",
        default=None,
        help="your model instead of the reference problems: module:factory or a TorchScript file",
    )
    ev.add_argument("--weights", default=None, help="weights for a module:factory --model")
    ev.add_argument("--data", default=None, help="with --model: the training data (inputs and labels)")
    ev.add_argument(
        "--test-data", default=None, help="with --model: the inputs whose decisions are explained"
    )
    ev.add_argument(
        "--limit", type=positive_int, default=None, help="with --model: use the first N samples of --data"
    )
    ev.add_argument(
        "--param-names",
        nargs="+",
        default=None,
        help="with --model: the scope (default: the output nn.Linear, weight and bias)",
    )
    ev.add_argument(
        "--n-train", type=positive_int, help="without --model: Fashion-MNIST training subset (default 10000)"
    )
    ev.add_argument(
        "--flip", type=_open_fraction, help="without --model: fraction of flipped labels (default 0.1)"
    )
    ev.add_argument(
        "--removal-tests",
        type=_at_least_two,
        help="without --model: test inputs of the removal test, at least 2 (default 50)",
    )
    ev.add_argument(
        "--removal-k",
        type=positive_int,
        help="without --model: proponents removed per test input (default 20)",
    )
    ev.add_argument(
        "--n-identical",
        type=positive_int,
        default=1000,
        help="test inputs of the identical-class test (with --model: also of fidelity; default 1000)",
    )
    ev.add_argument(
        "--batch-size",
        type=positive_int,
        default=256,
        help="batch size of every method: ours, TracInCP and the baselines (default 256)",
    )
    ev.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ev.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def _evaluate(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from .attr._protocol import run_evaluation

    out = Path(args.out) if args.out else Path(args.json).resolve().parent / "evaluation"
    given = {k: getattr(args, k) for k in _REFERENCE_ONLY if getattr(args, k) is not None}
    if args.model is not None and given:
        flags = ", ".join(f"--{k.replace('_', '-')}" for k in given)
        print(
            f"kktexplain evaluate: {flags} set the reference problems (without "
            "--model); your model's evaluation does not read them",
            file=sys.stderr,
        )
        return 2
    if args.model is not None:
        return _evaluate_user_model(args, out)
    model_only = [
        flag
        for flag, value in (
            ("--data", args.data),
            ("--test-data", args.test_data),
            ("--weights", args.weights),
            ("--limit", args.limit),
            ("--param-names", args.param_names),
        )
        if value
    ]
    if model_only:
        print(f"kktexplain evaluate: {', '.join(model_only)}: read only with --model", file=sys.stderr)
        return 2
    try:
        run_evaluation(
            out,
            parts=args.parts or _PARTS,
            n_identical=args.n_identical,
            **given,
            batch_size=args.batch_size,
            seed=args.seed,
            progress=not args.no_progress,
        )
    except (FileNotFoundError, ValueError) as e:
        print(f"kktexplain evaluate: {cli_message(e)}", file=sys.stderr)
        return 2
    shutil.copyfile(out / "evaluation.json", args.json)
    print(f"wrote {args.json} and figures in {out}")
    return 0


def _evaluate_user_model(args: argparse.Namespace, out) -> int:
    import shutil

    from ._cli_io import load_data, load_model
    from ._cli_options import _param_names
    from ._model_info import token_layer
    from .attr._user_evaluation import USER_PARTS, evaluate_model

    try:
        if not args.data or not args.test_data:
            raise ValueError("--model needs --data (training inputs and labels) and --test-data")
        model = load_model(args.model, args.weights)
        tokens = token_layer(model) is not None
        x, y = load_data(args.data, limit=args.limit, token_ids=tokens)
        if y is None:
            raise ValueError(f"--data {args.data!r} carries no labels")
        test, _ = load_data(args.test_data, token_ids=tokens)
        evaluate_model(
            model,
            (x, y),
            test,
            out,
            parts=args.parts or USER_PARTS,
            param_names=_param_names(args.param_names) if args.param_names else None,
            n_identical=args.n_identical,
            batch_size=args.batch_size,
            seed=args.seed,
            progress=not args.no_progress,
        )
    except (FileNotFoundError, ValueError, TypeError) as e:
        print(f"kktexplain evaluate: {cli_message(e)}", file=sys.stderr)
        return 2
    shutil.copyfile(out / "evaluation.json", args.json)
    print(f"wrote {args.json} and figures in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
