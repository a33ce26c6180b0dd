"""Screen of ``kktexplain.generate`` settings on the shipped Fashion-MNIST model, two judges.

Same teacher, split and judges as ``benchmarks/generation.py``: settings are compared on the
tuning split (``sample``: seed 1, 3 per class; ``blend``: pairs (0,1) (2,7) (5,8) (3,9), seed 1;
``edit``: 50 test images from 0-4999) and the chosen ones are then scored on the held-out split
(``sample``: seeds 2, 3, 5 per class; ``blend``: the six report pairs, seed 2; ``edit``: 50 test
images from 5000-9999), exactly the cases ``generation.py`` reports. ``--split tune_wide``
(``sample`` only) is a wider tuning split: seeds 4-7, 5 per class (200 samples).

Judges: the MLP 784-256-256-10 of ``generation.py`` and the reference ConvNet-3 (width 128,
instance norm, average pooling; ``load_reference_model("fashion_mnist_convnet")``, cached in
``~/.cache/kktexplain/models``), both trained separately from the teacher (ConvNet-2, width 16,
no norm, max pooling). Also recorded: the mean total variation of the samples in pixel units
([0, 1]) over that of real test images (1 = as smooth as data; textures are far above 1).

    OMP_NUM_THREADS=1 python benchmarks/generation_screen.py --part sample --split tune \\
        --configs old,aug,aug_tv0.1
    OMP_NUM_THREADS=1 python benchmarks/generation_screen.py --part sample --split heldout \\
        --configs old,aug_tv0.1

Each (part, split, config) row is merged into ``benchmarks/results/generation_screen.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS  # noqa: E402
from generation import REPORT_PAIRS, REPORT_SEEDS, load_judge  # noqa: E402

from kktexplain.datasets import load_fashion_mnist  # noqa: E402
from kktexplain.generate import blend, edit, sample, ssim  # noqa: E402
from kktexplain.kkt import Augmentation, KKTObjective, total_variation  # noqa: E402
from kktexplain.models import load_reference_model, load_shipped_model  # noqa: E402

TUNE_SEED = 1
# a wider tuning split for `sample` (200 samples; seeds disjoint from the held-out ones)
WIDE_TUNE_SEEDS = (4, 5, 6, 7)
TUNE_PAIRS = ((0, 1), (2, 7), (5, 8), (3, 9))
PAPER_AUG = (
    Augmentation()
)  # the paper's strengths: translate 0.125, crop 0.2, flip 0.5, cutout 0.15, noise 0.01
# the settings before this screen (now reachable only by passing them)
OLD = {
    "augmentation": None,
    "steps": 300,
    "lr": 0.05,
    "init_scale": 0.1,
    "init_mean": 0.0,
    "objective": KKTObjective(per_layer=True, name="default"),
}
EDIT_OLD = {
    "augmentation": None,
    "steps": 150,
    "lr": 0.05,
    "objective": KKTObjective(primal_kind="ce", per_layer=True),
}


def _obj(name: str, **kw) -> KKTObjective:
    # the per-tensor cosine unless a row says otherwise (obj.per_layer=false): the default
    # objective when the recorded rows were screened (now the global cosine)
    return KKTObjective(name=name, **{"per_layer": True, **kw})


def _cfg(**kw) -> dict:
    return {**OLD, **kw}


# name -> settings passed to sample / blend (objective fields given as `objective`)
SAMPLE_CONFIGS: dict[str, dict] = {
    "old": _cfg(),
    "aug": _cfg(augmentation=PAPER_AUG),
    "aug_one": _cfg(augmentation=Augmentation(mode="one")),
}
for _w in (0.01, 0.03, 0.1, 0.3, 1.0):
    SAMPLE_CONFIGS[f"tv{_w:g}"] = _cfg(objective=_obj(f"tv{_w:g}", tv=_w))
    SAMPLE_CONFIGS[f"aug_tv{_w:g}"] = _cfg(augmentation=PAPER_AUG, objective=_obj(f"tv{_w:g}", tv=_w))
for _w in (0.01, 0.1):
    SAMPLE_CONFIGS[f"aug_norm{_w:g}"] = _cfg(augmentation=PAPER_AUG, objective=_obj(f"n{_w:g}", norm=_w))
    SAMPLE_CONFIGS[f"aug_tv0.1_norm{_w:g}"] = _cfg(
        augmentation=PAPER_AUG, objective=_obj(f"tv0.1n{_w:g}", tv=0.1, norm=_w)
    )
for _s in (0.01, 1.0):
    SAMPLE_CONFIGS[f"aug_init{_s:g}"] = _cfg(augmentation=PAPER_AUG, init_scale=_s)
SAMPLE_CONFIGS["aug_steps600"] = _cfg(augmentation=PAPER_AUG, steps=600)


def parse_extra(text: str) -> dict:
    """``key=value;key=value`` on top of OLD: objective fields as ``obj.tv=0.1``, ``aug=paper|one``."""
    cfg, obj = dict(OLD), {}
    for item in filter(None, text.split(";")):
        key, value = item.split("=")
        if key.startswith("obj."):
            v = json.loads(value) if value[0] in "0123456789.-" or value in ("true", "false") else value
            obj[key[4:]] = v
        elif key == "aug":
            cfg["augmentation"] = {"paper": PAPER_AUG, "one": Augmentation(mode="one"), "none": None}[value]
        elif key in ("steps",):
            cfg[key] = int(value)
        elif value == "low" or key == "lr_schedule":
            cfg[key] = value
        else:
            cfg[key] = float(value)
    if obj:
        cfg["objective"] = _obj("custom", **obj)
    return cfg


def describe(cfg: dict) -> dict:
    out = {}
    for k, v in cfg.items():
        if isinstance(v, KKTObjective):
            base = _obj("base")  # what the recorded descriptions are relative to
            out["objective"] = {f: getattr(v, f) for f in v.to_dict() if getattr(v, f) != getattr(base, f)}
            out["objective"].pop("name", None)
        elif isinstance(v, Augmentation):
            out["augmentation"] = vars(v)
        else:
            out[k] = v
    return out


def judges(train, test):
    mlp, _ = load_judge(train, test)
    conv, _ = load_reference_model("fashion_mnist_convnet", progress=False)
    return {"mlp": mlp.eval(), "convnet": conv.eval()}


def probs(judge, x):
    with torch.no_grad():
        return torch.softmax(judge(x), -1)


def tv_pixels(x, data):
    return float(total_variation(data.denormalize(x), 1).mean())


def run_sample(teacher, js, cfg, split, test):
    seeds, per = {"tune": ((TUNE_SEED,), 3), "tune_wide": (WIDE_TUNE_SEEDS, 5), "heldout": (REPORT_SEEDS, 5)}[
        split
    ]
    xs, ys, pt = [], [], []
    for s in seeds:
        r = sample(
            teacher,
            n_per_class=per,
            seed=s,
            input_range=test.input_range,
            progress=False,
            **{"param_names": None, **cfg},
        )
        xs.append(r.inputs)
        ys.append(r.labels)
        pt.append(r.predictions)
    x, y, pt = torch.cat(xs), torch.cat(ys), torch.cat(pt)
    row = {"n": len(y), "teacher_rate": float((pt == y).float().mean())}
    for name, j in js.items():
        pj = probs(j, x)
        row[f"{name}_rate"] = float((pj.argmax(-1) == y).float().mean())
        row[f"{name}_p_label"] = float(pj.gather(1, y[:, None]).mean())
    row["tv_ratio"] = tv_pixels(x, test) / tv_pixels(test.inputs[:1000], test)
    return row


def run_blend(teacher, js, cfg, split, test):
    pairs, seed = (TUNE_PAIRS, TUNE_SEED) if split == "tune" else (REPORT_PAIRS, REPORT_SEEDS[0])
    cfg = dict(cfg)
    if "objective" in cfg:  # blends use the soft-target cross-entropy as primal term
        from dataclasses import replace

        cfg["objective"] = replace(cfg["objective"], primal_kind="ce")
    tot: dict[str, float] = {}
    xs = []
    for a, b in pairs:
        r = blend(
            teacher,
            a,
            b,
            delta=0.5,
            n=4,
            seed=seed,
            input_range=test.input_range,
            progress=False,
            **{"param_names": None, **cfg},
        )
        xs.append(r.inputs)
        for name, p in [("teacher", r.probabilities)] + [(n, probs(j, r.inputs)) for n, j in js.items()]:
            t2 = p.topk(2, -1).indices
            tot[f"{name}_top2"] = tot.get(f"{name}_top2", 0.0) + float(
                ((t2 == a).any(1) & (t2 == b).any(1)).float().mean()
            )
            top1 = p.argmax(-1)
            tot[f"{name}_a_or_b_top1"] = tot.get(f"{name}_a_or_b_top1", 0.0) + float(
                ((top1 == a) | (top1 == b)).float().mean()
            )
    row = {k: v / len(pairs) for k, v in tot.items()}
    row["n"] = 4 * len(pairs)
    row["tv_ratio"] = tv_pixels(torch.cat(xs), test) / tv_pixels(test.inputs[:1000], test)
    return row


def run_edit(teacher, js, cfg, split, test, n=50):
    seed, lo = (TUNE_SEED, 0) if split == "tune" else (REPORT_SEEDS[0], 5000)
    gen = torch.Generator().manual_seed(seed)
    idx = lo + torch.randperm(5000, generator=gen)[:n]
    x, src = test.inputs[idx], test.labels[idx]
    tgt = (src + torch.randint(1, 10, (len(idx),), generator=gen)) % 10
    # a config's changes to OLD, applied to edit's own schedule; no initial noise here
    cfg = {**EDIT_OLD, **{k: v for k, v in cfg.items() if k not in OLD or OLD[k] != v}}
    cfg = {k: v for k, v in cfg.items() if k not in ("init_scale", "init_mean")}
    if "objective" in cfg:
        from dataclasses import replace

        cfg["objective"] = replace(cfg["objective"], primal_kind="ce")
    r = edit(
        teacher,
        x,
        tgt,
        seed=seed,
        input_range=test.input_range,
        progress=False,
        **{"param_names": None, **cfg},
    )
    row = {"n": n, "teacher_rate": float((r.predictions == tgt).float().mean())}
    for name, j in js.items():
        pj = probs(j, r.inputs).argmax(-1)
        row[f"{name}_rate"] = float((pj == tgt).float().mean())
        row[f"{name}_source_rate"] = float((pj == src).float().mean())
    row["ssim"] = float(ssim(test.denormalize(r.inputs), test.denormalize(x), data_range=1.0).mean())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", choices=["sample", "blend", "edit"], required=True)
    parser.add_argument("--split", choices=["tune", "tune_wide", "heldout"], required=True)
    parser.add_argument("--configs", default="", help="comma-separated names of SAMPLE_CONFIGS")
    parser.add_argument(
        "--extra", action="append", default=[], help="NAME:key=value;key=value (see parse_extra); repeatable"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "generation_screen.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, test = load_fashion_mnist(train=True), load_fashion_mnist(train=False)
    teacher, _ = load_shipped_model("fashion_mnist_small")
    js = judges(train, test)
    todo = {n: SAMPLE_CONFIGS[n] for n in filter(None, args.configs.split(","))}
    extra = {}
    for item in args.extra:
        name, text = item.split(":", 1)
        todo[name], extra[name] = parse_extra(text), item
    if args.split == "tune_wide" and args.part != "sample":
        parser.error("--split tune_wide is defined for --part sample only")
    fn = {"sample": run_sample, "blend": run_blend, "edit": run_edit}[args.part]
    data = json.loads(args.out.read_text()) if args.out.is_file() else {"rows": []}
    for name, cfg in todo.items():
        t = time.perf_counter()
        row = fn(teacher, js, cfg, args.split, test)
        row = {
            "part": args.part,
            "split": args.split,
            "config": name,
            "settings": describe(cfg),
            **row,
            "seconds": round(time.perf_counter() - t, 1),
            "command": f"OMP_NUM_THREADS=1 python benchmarks/generation_screen.py --part {args.part} "
            f"--split {args.split} "
            + (f"--configs {name}" if name not in extra else "")
            + (f"--extra '{extra[name]}'" if name in extra else ""),
        }
        print(json.dumps({k: v for k, v in row.items() if k not in ("settings", "command")}), flush=True)
        data["rows"] = [
            r for r in data["rows"] if (r["part"], r["split"], r["config"]) != (args.part, args.split, name)
        ] + [row]
        args.out.write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
