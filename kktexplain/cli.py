"""The ``kktexplain`` console script."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main"]


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
    parser = argparse.ArgumentParser(prog="kktexplain", description="Deep support vectors.")
    sub = parser.add_subparsers(dest="verb", required=True)
    demo = sub.add_parser("demo", help="DSVs of a Fashion-MNIST ConvNet, with figures")
    demo.add_argument("--out", default="kktexplain-demo")
    demo.add_argument("--n-per-class", type=int, default=10)
    demo.add_argument("--steps", type=int, default=None)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--no-progress", action="store_true")
    check = sub.add_parser("sanity-check", help="DeepKKT vs sklearn's linear SVC on built-in datasets")
    check.add_argument("--json", required=True, help="where to write one row per dataset and C")
    check.add_argument("--C", type=float, nargs="+", default=[0.1, 1.0, 10.0])
    check.add_argument("--weights", choices=["svc", "torch"], default="svc")
    check.add_argument("--synth-steps", type=int, default=3000)
    check.add_argument(
        "--synth-lr", type=float, default=None, help="step on the DSVs (default: scaled to each problem)"
    )
    check.add_argument("--synth-optimizer", choices=("sgd", "adam"), default="sgd")
    args = parser.parse_args(argv)
    if args.verb == "sanity-check":
        from .svm import run_sanity_suite

        rows = run_sanity_suite(
            args.C,
            weights=args.weights,
            synth_steps=args.synth_steps,
            synth_lr=args.synth_lr,
            synth_optimizer=args.synth_optimizer,
        )
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
        for row in rows:
            print(
                f"{row['dataset']:>24s} C={row['C']:<5g} F1={row['f1']:.4f} "
                f"pearson={row['pearson']:.4f} stat={row['stationarity_residual']:.2e} "
                f"margin_dev={row['margin_deviation']:.3f} "
                f"synth_active={row['synth_active_fraction']:.2f} "
                f"synth_stat={row['synth_stationarity_residual']:.3f}"
            )
        print(f"wrote {args.json}")
        return 0
    if args.verb == "demo":
        from ._demo import run_demo

        try:
            summary = run_demo(args.out, args.n_per_class, args.steps, args.seed, not args.no_progress)
        except FileNotFoundError as e:
            print(f"kktexplain demo: {e}", file=sys.stderr)
            return 2
        print(json.dumps({k: v for k, v in summary.items() if k != "objective"}, indent=2))
        print(f"wrote {args.out}/dsv_grid.png, history.png, summary.json, dsv.npz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
