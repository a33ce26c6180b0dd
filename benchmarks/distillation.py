"""Dataset distillation on Fashion-MNIST with kktexplain.distill, under one fixed student protocol.

Rows, for each number of images per class (ipc) and each synthesis seed ``s``:

* ``random``: ``random_real(train, ipc, seed=s)``;
* ``coreset``: the top-λ samples per class of a selection over ``--pool`` random training
  images (drawn with seed ``s``);
* ``dsv_kshot``: ``distill(init="real")`` started from exactly the ``random`` row's images;
* ``dsv_0shot``: ``distill(init="noise")``;
* ``dsv_0shot_prior``: ``kktexplain.generate.sample`` (0-shot, with its image prior: a black start
  and a total-variation prior, chosen on the generation screens);
* ``dsv_0shot_other``: ``distill(init="other")`` started from random images of another
  dataset, as the paper's 0-shot rows: scikit-learn's 8 x 8 digits (the one other image set
  that ships offline), upsampled to the teacher's 28 x 28 and normalised as its data;
* ``dsv_kshot_paper``: as ``dsv_kshot`` with the paper-literal objective (``paper_eq9``,
  ``dual="prune"``);
* ``dsv_kshot_global`` / ``dsv_0shot_global``: as ``dsv_kshot`` / ``dsv_0shot`` with the global
  cosine as the stationarity distance (``KKTObjective(per_layer=False)``), which reaches a
  higher stationarity cosine (docs/residuals.md);
* ``dsv_kshot_free``: as ``dsv_kshot`` with stationarity measured only on the parameters
  outside scale-invariant modules (``scale_invariant_modules(teacher, x).free_param_names``;
  all parameters for a teacher without normalisation layers);
* ``*_soft``: the same sets with the teacher's probabilities as labels.

Every set is scored by ``evaluate`` with each student seed (default protocol: DC's ConvNet-3,
SGD, 300 epochs; ``--epochs`` shortens it and is recorded). ``dsv_kshot`` and ``random`` are
paired (same images, same student seed), so their difference is tested with a paired t-test.

Usage::

    python benchmarks/distillation.py --ipc 1 10 --synth-seeds 0 1 2 --student-seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from _common import RESULTS, write_json
from scipy.stats import ttest_rel

from kktexplain import DeepSupportVectors
from kktexplain.attr._baselines import last_linear
from kktexplain.datasets import load_digits, load_fashion_mnist
from kktexplain.distill import StudentProtocol, add_soft_labels, coreset, distill, evaluate, random_real
from kktexplain.kkt import KKTObjective, scale_invariant_modules
from kktexplain.models import accuracy, load_reference_model, load_shipped_model

ROWS = (
    "random",
    "coreset",
    "dsv_kshot",
    "dsv_kshot_global",
    "dsv_kshot_free",
    "dsv_0shot",
    "dsv_0shot_global",
    "dsv_0shot_prior",
    "dsv_0shot_other",
    "dsv_kshot_paper",
    "dsv_kshot_audit",
    "dsv_0shot_audit",
)
SOFT = ("random", "dsv_kshot", "dsv_0shot")


def teacher_model(name: str):
    shipped = load_shipped_model(name)
    if shipped is not None:
        return shipped
    return load_reference_model(name, progress=False)


def other_images(train) -> torch.Tensor:
    """scikit-learn's digits as images of ``train``'s shape and normalisation (pixels in [0, 1],
    bilinear upsampling), for ``init="other"``."""
    digits = load_digits(normalize=False).inputs.float().reshape(-1, 1, 8, 8) / 16.0
    size = train.input_shape[-2:]
    x = torch.nn.functional.interpolate(digits, size=size, mode="bilinear", align_corners=False)
    x = x.expand(-1, train.input_shape[0], -1, -1).clamp(0.0, 1.0)
    return (x - train.mean) / train.std


def make_sets(row, ipc, seed, teacher, train, pool, range_, progress):
    base = random_real(train, ipc, seed=seed)
    kw = {"input_range": range_, "progress": progress, "seed": seed}
    if row == "random":
        return base
    if row == "coreset":
        idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:pool]
        sel = DeepSupportVectors(param_names=None, progress=progress).attribute(
            teacher, candidates=train.inputs[idx], labels=train.labels[idx]
        )
        return coreset(sel, ipc)
    # every row but dsv_kshot_free over every parameter, the scope its results were recorded in
    # (param_names=None; the default is now "free"), and with the per-tensor cosine, the default
    # objective they were recorded with (now the global cosine, the *_global rows)
    kshot = {  # started from the random row's images, with these settings
        "dsv_kshot": {"objective": "per_tensor", "param_names": None},
        "dsv_kshot_global": {"objective": KKTObjective(per_layer=False), "param_names": None},
        "dsv_kshot_paper": {"objective": "paper_eq9", "dual": "prune", "param_names": None},
        # stationarity only on the parameters outside scale-invariant modules (docs/residuals.md)
        "dsv_kshot_free": {
            "objective": "per_tensor",
            "param_names": scale_invariant_modules(teacher, train.inputs[:32]).free_param_names,
        },
    }
    # the stationarity-audit recipe (docs/defaults.md): the last layer, exact λ every step,
    # step sizes along a half cosine (600 steps from noise; the real start's 60 steps)
    audit = {
        "param_names": [f"{last_linear(teacher)[0]}.weight", f"{last_linear(teacher)[0]}.bias"],
        "lambda_solve_every": 1,
        "lr_schedule": "cosine",
    }
    kshot["dsv_kshot_audit"] = audit
    if row in kshot:
        return distill(teacher, ipc, init="real", real=(base.inputs, base.labels), **kshot[row], **kw)
    zero_shot = {
        "dsv_0shot": {"objective": "per_tensor", "param_names": None},
        "dsv_0shot_global": {"objective": KKTObjective(per_layer=False), "param_names": None},
    }
    zero_shot["dsv_0shot_audit"] = {**audit, "steps": 600}
    if row in zero_shot:
        return distill(teacher, ipc, init="noise", **zero_shot[row], **kw)
    if row == "dsv_0shot_other":
        return distill(teacher, ipc, init="other", other=other_images(train), param_names=None, **kw)
    if row == "dsv_0shot_prior":  # kktexplain.generate.sample's image prior: black start, TV 0.1
        from kktexplain.distill import DistilledSet
        from kktexplain.generate import sample

        gen = sample(
            teacher, n_per_class=ipc, seed=seed, input_range=range_, progress=progress, param_names=None
        )
        return DistilledSet(gen.inputs, gen.labels, None, "generate-sample", {"settings": gen.settings})
    raise ValueError(row)


def summarize(rows: dict) -> None:
    """Mean, std and count of each row's students, and the paired differences to ``random``."""
    for r in rows.values():
        accs = [a for e in r["per_synth_seed"] for a in e["accuracies"]]
        r["mean"], r["std"], r["n"] = (
            statistics.mean(accs),
            statistics.stdev(accs) if len(accs) > 1 else 0.0,
            len(accs),
        )
    for key in (
        "dsv_kshot",
        "dsv_kshot_soft",
        "dsv_kshot_paper",
        "dsv_kshot_global",
        "dsv_kshot_free",
        "dsv_kshot_audit",
        "dsv_0shot_audit",
        "coreset",
    ):
        base = "random_soft" if key.endswith("soft") else "random"
        if key in rows and base in rows:
            a = [x for e in rows[key]["per_synth_seed"] for x in e["accuracies"]]
            b = [x for e in rows[base]["per_synth_seed"] for x in e["accuracies"]]
            rows[key]["vs_" + base] = {
                "mean_difference": statistics.mean(a) - statistics.mean(b),
                "paired_t_pvalue": float(ttest_rel(a, b).pvalue) if len(a) > 1 else None,
            }


def merge(names: list[str], name: str) -> None:
    """One table from runs of the same rows on different synthesis seeds (``--merge``)."""
    runs = [json.loads((RESULTS / f"{n}.json").read_text()) for n in names]
    out = {k: v for k, v in runs[0].items() if k not in ("command", "torch", "threads", "table")}
    out["merged_from"] = [r["command"] for r in runs]
    table: dict = {}
    for run in runs:
        for ipc, rows in run["table"].items():
            for key, r in rows.items():
                entry = table.setdefault(ipc, {}).setdefault(key, {"per_synth_seed": []})
                entry["per_synth_seed"] += r["per_synth_seed"]
    for rows in table.values():
        summarize(rows)
    out["table"] = table
    print("wrote", write_json(name, out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ipc", type=int, nargs="+", default=[1, 10, 50])
    p.add_argument("--synth-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--student-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--rows", nargs="+", default=list(ROWS))
    p.add_argument("--soft", nargs="*", default=list(SOFT), help="rows also scored with soft labels")
    p.add_argument("--teacher", default="fashion_mnist_small")
    p.add_argument("--epochs", type=int, default=300, help="student epochs (DC: 300)")
    p.add_argument("--pool", type=int, default=2000, help="training images the coreset's selection scores")
    p.add_argument(
        "--test-limit", type=int, default=None, help="score on this many test images (class-stratified)"
    )
    p.add_argument("--name", default="distillation")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--merge", nargs="+", default=None, help="merge these results/NAME.json into --name")
    args = p.parse_args()
    if args.merge:
        merge(args.merge, args.name)
        return

    train, test = load_fashion_mnist(train=True), load_fashion_mnist(train=False)
    teacher, card = teacher_model(args.teacher)
    if args.test_limit is not None:  # the same stratified subset for every row
        test = test.subset(random_real(test, args.test_limit // 10, seed=12345).info["indices"])
    protocol = StudentProtocol.from_preset("dc", epochs=args.epochs)
    out = {
        "teacher": card,
        "teacher_test_accuracy": accuracy(teacher, test),
        "test_images": len(test),
        "protocol": protocol.to_dict(),
    }
    table = {}
    for ipc in args.ipc:
        rows = {}
        for row in args.rows:
            for labels in ("hard", "soft") if row in args.soft else ("hard",):
                rows[row if labels == "hard" else f"{row}_soft"] = {"per_synth_seed": []}
        for seed in args.synth_seeds:
            for row in args.rows:
                start = time.perf_counter()
                small = make_sets(row, ipc, seed, teacher, train, args.pool, train.input_range, args.progress)
                made = time.perf_counter() - start
                variants = [("hard", row, small)]
                if row in args.soft:
                    variants.append(("soft", f"{row}_soft", add_soft_labels(small, teacher)))
                for labels, key, dset in variants:
                    ev = evaluate(dset, test, seeds=args.student_seeds, protocol=protocol, labels=labels,
                                  progress=args.progress)  # fmt: skip
                    entry = {"synth_seed": seed, "accuracies": list(ev.accuracies), "seconds_to_make": made}
                    if "kkt" in dset.info:
                        entry["kkt"] = dset.info["kkt"]
                    rows[key]["per_synth_seed"].append(entry)
                    print(
                        ipc,
                        key,
                        seed,
                        [round(a, 4) for a in ev.accuracies],
                        f"made in {made:.0f} s",
                        flush=True,
                    )
        summarize(rows)
        table[str(ipc)] = rows
        out["table"] = table
        write_json(args.name, out)  # after every ipc, so a long run keeps what it finished
    print("wrote", write_json(args.name, out))


if __name__ == "__main__":
    main()
