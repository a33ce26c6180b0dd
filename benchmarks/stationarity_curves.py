"""How far stationarity ``θ* = −Σ λ_i ∇θ L_i`` can hold on the demo's model, against the number of DSVs.

Model: the shipped ``fashion_mnist_small`` (the demo's, 10,330 parameters, Adam without weight
decay); data: Fashion-MNIST. ``N = 10 × per_class`` with ``per_class`` in {1, 3, 10, 30, 100}.
Scopes of the stationarity condition:

* ``all``: every parameter against θ*;
* ``last``: the classifier's weight and bias only (``param_names``);
* ``displacement``: every parameter against ``θ* − θ_0`` (``reference=reference_init(...)``;
  θ_0 is rebuilt from the recipe's seed, the same call the model's training started from).

Parts (``--parts``, all by default; each row is merged into the JSON as soon as it finishes, so
a partial run keeps what finished and parts can run in separate processes):

* ``bounds``: the equal-λ readiness (``kkt_readiness`` on 200 training images per class, every
  scope) and the class-centring bound: every per-sample gradient of the classifier sums to zero
  over the classes (``Σ_c (p_c − y_c) = 0``), so ``−Σλ∇θL`` has no class-mean component and
  ``cos ≤ ‖C t‖ / ‖t‖`` (``C`` removes the class mean of the classifier's rows) for any N and λ;
* ``select``: selection over ``per_class`` real training images per class (draw seed 0) in each
  scope, exact NNLS (``DeepSupportVectors().attribute(model, candidates=..., labels=...)``),
  with the span bound: the least-squares cosine with λ of any sign (the projection of the
  target on the span of the N gradients), which NNLS cannot beat;
* ``synth`` / ``synth_last`` / ``synth_disp``: synthesis from noise with the demo's settings
  (``DeepSupportVectors(n_per_class, init="noise", input_range=...)``, the per-tensor cosine
  (``objective="per_tensor"``, the default when these were recorded), 300
  steps, lr 0.05, ``dual="exp"``, seed 0), optimising stationarity in scope ``all``, ``last``
  or ``displacement``; every set is measured in every scope, with its per-layer cosines, and
  its multipliers are refitted by exact NNLS on the synthesised inputs (``refit``);
* ``variants``: synthesis in scope ``all`` with ``dual="clamp"``, ``dual="prune"`` and
  ``lambda_max`` equal to the automatic scale ``s`` (λ bounded by its starting value);
* ``objective``: synthesis in scopes ``last`` and ``all`` with the global cosine
  (``KKTObjective(per_layer=False)``, now the default) instead of the per-tensor average.

Synthesis in scope ``last`` stops at N = 300 (``--last-per-class``) and in scope
``displacement`` at N = 100 (``--disp-per-class``); the variants run at N = 10 and 100, the
global-cosine objective at N = 100. The synthesis at N = 1,000 took 18 CPU-minutes with its
measurements, one at N = 300 about 3. Run single-threaded (the model is tiny)::

    OMP_NUM_THREADS=1 python benchmarks/stationarity_curves.py

The recorded run split the parts over several processes (``commands`` in the JSON), the same grid.

Writes ``benchmarks/results/stationarity_curves.json``.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import RESULTS

from kktexplain import DeepSupportVectors, kkt_readiness
from kktexplain.datasets import load_fashion_mnist
from kktexplain.kkt import FunctionalModel, KKTObjective, kkt_residuals
from kktexplain.kkt._grads import iter_per_sample_grads
from kktexplain.models import load_shipped_model, reference_init

MODEL = "fashion_mnist_small"
LAST = ["classifier.weight", "classifier.bias"]
PER_CLASS = (1, 3, 10, 30, 100)
PARTS = ("bounds", "select", "synth", "synth_last", "synth_disp", "variants", "objective")
PATH = RESULTS / "stationarity_curves.json"
VARIANTS = ("dual_clamp", "dual_prune", "lambda_max_s")
STEPS: dict = {}  # {"steps": n} only for smoke tests


def record(key: str, row: dict, meta: dict | None = None) -> None:
    """Merge ``row`` under ``rows[key]`` (and ``meta`` at the top) into the JSON, under a lock."""
    RESULTS.mkdir(exist_ok=True)
    with open(Path(tempfile.gettempdir()) / f"{PATH.stem}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(PATH.read_text()) if PATH.exists() else {}
        command = "python " + " ".join(sys.argv)
        data.setdefault("commands", [])
        if command not in data["commands"]:
            data["commands"].append(command)
        data["torch"], data["threads"] = torch.__version__, torch.get_num_threads()
        data.update(meta or {})
        data.setdefault("rows", {})[key] = row
        data["rows"] = dict(sorted(data["rows"].items()))
        data["total_cpu_seconds"] = sum(r.get("cpu_seconds", 0.0) for r in data["rows"].values())
        tmp = PATH.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(PATH)


class Scopes:
    """The three stationarity targets on one model."""

    def __init__(self, model, theta0) -> None:
        self.model, self.theta0 = model, theta0
        self.kwargs = {
            "all": {"param_names": None, "reference": None},
            "last": {"param_names": LAST, "reference": None},
            "displacement": {"param_names": None, "reference": theta0},
        }

    def fmodel(self, scope: str) -> FunctionalModel:
        kw = self.kwargs[scope]
        return FunctionalModel(self.model, kw["param_names"], reference=kw["reference"])

    def measure(self, x, y, lam) -> dict:
        """Cosine, norm ratio and (for ``all``) per-layer cosines of given λ in every scope."""
        out = {}
        for scope in self.kwargs:
            res = kkt_residuals(self.fmodel(scope), x, y, lam, KKTObjective().loss_fn(), chunk_size=500)
            out[scope] = {
                "cosine": res.stationarity["cosine"],
                "g_norm_ratio": res.stationarity["g_norm_ratio"],
                "per_layer_cosine": res.per_layer_cosine,
            }
        return out

    def select(self, x, y, scope: str) -> dict:
        """Exact NNLS selection of λ over ``x`` in ``scope``, and the signed least-squares bound."""
        kw = self.kwargs[scope]
        explainer = DeepSupportVectors(param_names=kw["param_names"], progress=False)
        sel = explainer.attribute(self.model, candidates=x, labels=y, reference=kw["reference"])
        fm = self.fmodel(scope)
        grads = torch.cat([g for _, g in iter_per_sample_grads(fm, x, y, chunk_size=500)]).double()
        target = torch.cat([fm.target[k].flatten() for k in fm.names]).double()
        coef = torch.linalg.lstsq(grads.T, -target.unsqueeze(1), driver="gelsd").solution
        proj = -(grads.T @ coef).squeeze(1)
        return {
            "nnls_cosine": sel.kkt.stationarity["cosine"],
            "nnls_g_norm_ratio": sel.kkt.stationarity["g_norm_ratio"],
            "nnls_per_layer_cosine": sel.kkt.per_layer_cosine,
            "n_support": int((sel.lambdas > 0).sum()),
            "span_bound_cosine": float(proj @ target / (proj.norm() * target.norm())),
            "gradient_rank": int(torch.linalg.matrix_rank(grads)),
        }


def centring_bound(fm: FunctionalModel) -> float:
    """``‖C t‖ / ‖t‖``: the largest cosine a sum of CE gradients can reach (class-mean removed)."""
    kept, total = 0.0, 0.0
    for k in fm.names:
        t = fm.target[k].double()
        total += float(t.pow(2).sum())
        kept += float((t - t.mean(0, keepdim=True)).pow(2).sum() if k in LAST else t.pow(2).sum())
    return math.sqrt(kept / total)


def part_bounds(scopes: Scopes, train) -> None:
    cpu = time.process_time()
    x, y, _ = train.per_class(200, seed=0)
    row: dict = {"kind": "bounds", "readiness_n": len(x), "readiness": {}, "centring_bound": {}}
    for scope, kw in scopes.kwargs.items():
        r = kkt_readiness(scopes.model, (x, y), param_names=kw["param_names"], reference=kw["reference"])
        row["readiness"][scope] = {
            "cosine": r.cosine,
            "verdict": r.verdict,
            "per_layer_cosine": r.per_layer_cosine,
        }
        row["centring_bound"][scope] = centring_bound(scopes.fmodel(scope))
    named0 = dict(scopes.theta0.named_parameters())
    row["theta_vs_theta0_cosine"] = {
        k: torch.nn.functional.cosine_similarity(v.detach().flatten(), named0[k].flatten(), dim=0).item()
        for k, v in scopes.model.named_parameters()
    }
    row["tensor_sizes"] = {k: v.numel() for k, v in scopes.model.named_parameters()}
    row["cpu_seconds"] = time.process_time() - cpu
    record("bounds", row)
    print("bounds", json.dumps({s: round(v["cosine"], 4) for s, v in row["readiness"].items()}), flush=True)
    print("centring", json.dumps({s: round(v, 4) for s, v in row["centring_bound"].items()}), flush=True)


def part_select(scopes: Scopes, train, per_class) -> None:
    for k in per_class:
        x, y, _ = train.per_class(k, seed=0)
        for scope in scopes.kwargs:
            cpu = time.process_time()
            row = {"kind": "select", "scope": scope, "per_class": k, "n": len(x), "draw_seed": 0}
            row.update(scopes.select(x, y, scope))
            row["cpu_seconds"] = time.process_time() - cpu
            record(f"select/{scope}/{k:03d}", row)
            print(
                "select",
                scope,
                k,
                round(row["nnls_cosine"], 4),
                round(row["span_bound_cosine"], 4),
                f"{row['cpu_seconds']:.1f}s",
                flush=True,
            )


def synth_row(scopes: Scopes, train, k: int, scope: str, variant: str, **settings) -> None:
    cpu = time.process_time()
    kw = scopes.kwargs[scope]
    explainer = DeepSupportVectors(
        n_per_class=k,
        init="noise",
        input_range=train.input_range,
        param_names=kw["param_names"],
        seed=0,
        progress=False,
        **STEPS,
        # the per-tensor cosine, the default objective of the recorded runs (now the global cosine)
        **{"objective": "per_tensor", **settings},
    )
    res = explainer.attribute(scopes.model, reference=kw["reference"])
    lam = res.lambdas
    row = {
        "kind": "synth",
        "scope": scope,
        "variant": variant,
        "per_class": k,
        "n": len(lam),
        "settings": {k2: v.to_dict() if hasattr(v, "to_dict") else v for k2, v in settings.items()},
        "steps": res.settings["steps"],
        "lr": res.settings["lr"],
        "lambda_scale_value": res.settings["lambda_scale_value"],
        "cosine": res.kkt.stationarity["cosine"],
        "g_norm_ratio": res.kkt.stationarity["g_norm_ratio"],
        "feasibility_rate": res.kkt.feasibility_rate,
        "mean_entropy": float(res.kkt.entropy.mean()),
        "n_lambda_positive": int((lam > 0).sum()),
        "lambda_max_over_mean": float(lam.max() / lam.mean()) if float(lam.mean()) > 0 else None,
        "measured": scopes.measure(res.inputs, res.labels, lam),
        "synthesis_seconds": res.settings["seconds"],
    }
    row["refit"] = {s: scopes.select(res.inputs, res.labels, s) for s in scopes.kwargs}
    row["cpu_seconds"] = time.process_time() - cpu
    record(f"synth/{scope}/{variant}/{k:03d}", row)
    print(
        "synth",
        scope,
        variant,
        k,
        round(row["cosine"], 4),
        {s: round(v["cosine"], 4) for s, v in row["measured"].items()},
        f"{row['cpu_seconds']:.1f}s",
        flush=True,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    p.add_argument("--per-class", type=int, nargs="+", default=list(PER_CLASS))
    p.add_argument("--synth-per-class", type=int, nargs="+", default=list(PER_CLASS))
    p.add_argument(
        "--last-per-class",
        type=int,
        nargs="+",
        default=[1, 3, 10, 30],
        help="per_class of synth_last (N = 1,000 left out to bound the CPU time)",
    )
    p.add_argument(
        "--disp-per-class",
        type=int,
        nargs="+",
        default=[1, 3, 10],
        help="per_class of synth_disp (N = 300 and 1,000 left out to bound the CPU time)",
    )
    p.add_argument("--variant-per-class", type=int, nargs="+", default=[1, 10])
    p.add_argument("--objective-per-class", type=int, nargs="+", default=[10])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--steps", type=int, default=None, help="smoke tests only (default: the demo's 300)")
    p.add_argument("--out", default="stationarity_curves", help="result name (smoke tests: another)")
    args = p.parse_args()
    global PATH
    PATH = RESULTS / f"{args.out}.json"
    if args.steps is not None:
        STEPS["steps"] = args.steps
    torch.manual_seed(0)
    model, card = load_shipped_model(MODEL)
    theta0 = reference_init(MODEL)
    train = load_fashion_mnist(train=True)
    meta = {
        "what": "stationarity cosine cos(t, -sum_i lambda_i grad L_i) against N = 10 x per_class, for "
        "t = theta* (scope all), the classifier's theta* (scope last) and theta* - theta_0 "
        "(scope displacement); synthesis from noise with the demo's settings, NNLS selection "
        "over real training images, the equal-lambda readiness and two bounds",
        "model": {
            "name": MODEL,
            "n_parameters": card["n_parameters"],
            "test_accuracy": card["test_accuracy"],
            "card_torch": card["torch"],
            "spec": card["spec"],
        },
        "theta0": "reference_init('fashion_mnist_small'): the recipe's _build with torch.manual_seed(seed), "
        "the same call train_shipped makes before training (exact for the same torch version)",
        "varied": "N only; one synthesis seed (0) and one draw of real images (seed 0)",
    }
    record("_meta", {"cpu_seconds": 0.0}, meta)
    scopes = Scopes(model, theta0)
    if "bounds" in args.parts:
        part_bounds(scopes, train)
    if "select" in args.parts:
        part_select(scopes, train, args.per_class)
    for part, scope, grid in (
        ("synth", "all", args.synth_per_class),
        ("synth_last", "last", args.last_per_class),
        ("synth_disp", "displacement", args.disp_per_class),
    ):
        if part in args.parts:
            for k in grid:
                synth_row(scopes, train, k, scope, "default")
    if "variants" in args.parts:
        for k in args.variant_per_class:
            if "dual_clamp" in args.variants:
                synth_row(scopes, train, k, "all", "dual_clamp", dual="clamp")
            if "dual_prune" in args.variants:
                synth_row(scopes, train, k, "all", "dual_prune", dual="prune")
            if "lambda_max_s" not in args.variants:
                continue
            # the automatic scale s of this N (a zero-step run), then lambda <= s
            s = (
                DeepSupportVectors(
                    n_per_class=k, init="noise", steps=0, input_range=train.input_range, progress=False
                )
                .attribute(model)
                .settings["lambda_scale_value"]
            )
            synth_row(scopes, train, k, "all", "lambda_max_s", lambda_max=s)
    if "objective" in args.parts:
        # the default distance averages the cosine over parameter tensors (a 10-entry bias weighs
        # as much as a 7,840-entry weight); the global cosine is what the tables measure
        for k in args.objective_per_class:
            for scope in ("last", "all"):
                synth_row(scopes, train, k, scope, "global_cosine", objective=KKTObjective(per_layer=False))


if __name__ == "__main__":
    main()
