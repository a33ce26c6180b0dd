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
    args = parser.parse_args(argv)
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
