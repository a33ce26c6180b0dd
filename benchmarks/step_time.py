"""Cost of one DeepKKT step against one plain training step on the same batch.

The DeepKKT step is what :class:`DeepSupportVectors` does per iteration: the augmented and the
un-augmented view, each one forward, one ``create_graph`` backward for ``sum λ_i ∇θ L_i``, then
one double backward to the inputs and multipliers, and an Adam step. The training step is one
forward, one backward and an Adam step of the same model on the same batch. Both are timed side
by side in one run; the ratio of medians is reported.

``--scopes all free`` also times the default objective with stationarity restricted to the
parameters outside scale-invariant modules (``free``: :func:`kktexplain.kkt.scale_invariant_modules`,
what ``DeepSupportVectors(param_names=...)`` takes), side by side in the same run; ``default`` is
the scope ``DeepSupportVectors()`` resolves its default ``param_names`` to. The train step always
updates every parameter.

Usage::

    python benchmarks/step_time.py --batch 100 --repeats 15
    python benchmarks/step_time.py --repeats 11 --scopes all free --name step_time_scopes
    python benchmarks/step_time.py --repeats 11 --scopes default all --name step_time_default
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
import torch.nn.functional as F
from _common import median_time, write_json

from kktexplain import DeepSupportVectors
from kktexplain._scope import resolve_param_names
from kktexplain.kkt import Augmentation, FunctionalModel, KKTObjective, scale_invariant_modules
from kktexplain.models import load_reference_model


def make_kkt_step(fmodel, objective, x0, y):
    """One DeepKKT iteration as the explainer runs it (both views, one double backward)."""
    x = x0.clone().requires_grad_(True)
    rho = torch.zeros(len(x0), requires_grad=True)
    opt = torch.optim.Adam([x, rho], lr=0.01)
    aug, gen = Augmentation(), torch.Generator().manual_seed(0)

    def kkt_step():
        value = objective(fmodel, x, y, rho.exp(), aug, gen)
        opt.zero_grad()
        value.total.backward(inputs=[x, rho])  # as synthesis_step: no parameter grads
        opt.step()

    return kkt_step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument(
        "--cpu-time",
        action="store_true",
        help="time with this process's CPU time (robust to other jobs; run with OMP_NUM_THREADS=1)",
    )
    p.add_argument("--name", default="step_time", help="result file name (benchmarks/results/NAME.json)")
    p.add_argument(
        "--scopes",
        nargs="+",
        choices=("all", "free", "default"),
        default=["all"],
        help="parameter scopes of stationarity to time (free: outside scale-invariant modules; "
        "default: what DeepSupportVectors() resolves its param_names to on this batch)",
    )
    args = p.parse_args()
    clock = time.process_time if args.cpu_time else time.perf_counter
    model, card = load_reference_model("fashion_mnist_convnet", progress=False)
    torch.manual_seed(0)
    x0 = torch.randn(args.batch, 1, 28, 28)
    y = torch.arange(10).repeat_interleave(args.batch // 10)[: args.batch]

    student = copy.deepcopy(model).train()
    opt_train = torch.optim.Adam(student.parameters(), lr=1e-3)

    def train_step():
        loss = F.cross_entropy(student(x0), y)
        opt_train.zero_grad()
        loss.backward()
        opt_train.step()

    scopes = {}
    for scope in args.scopes:
        if scope == "default":
            names, _ = resolve_param_names(model, DeepSupportVectors().param_names, x0, x0.shape[1:], 0)
        else:
            names = None if scope == "all" else scale_invariant_modules(model, x0[:32]).free_param_names
        scopes[scope] = names
    results = {"train_step_s": median_time(train_step, args.repeats, clock=clock)}
    for scope, names in scopes.items():
        fmodel = FunctionalModel(model, param_names=names)
        suffix = "" if scope == "all" else f"_{scope}"
        for preset in ("default", "paper_eq9", "paper_alg1"):
            kkt_step = make_kkt_step(fmodel, KKTObjective.from_preset(preset), x0, y)
            t = median_time(kkt_step, args.repeats, clock=clock)
            results[f"kkt_step_s_{preset}{suffix}"] = t
            results[f"ratio_{preset}{suffix}"] = t / results["train_step_s"]
            print(scope, preset, f"{t:.3f}s", f"ratio {t / results['train_step_s']:.2f}", flush=True)
    print(results)
    write_json(
        args.name,
        {
            "batch": args.batch,
            "repeats": args.repeats,
            "model": card["name"],
            "clock": "process_time" if args.cpu_time else "perf_counter",
            "scopes": {k: v for k, v in scopes.items()},
            "median_seconds": results,
        },
    )


if __name__ == "__main__":
    main()
