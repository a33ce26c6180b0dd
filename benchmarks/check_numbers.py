"""Check the numbers that README.md and docs/ quote against the JSON in benchmarks/results/.

Each claim formats values read from a result file and requires the resulting text to appear
verbatim in the page, so a number that drifts from its JSON (or a JSON regenerated without its
page) fails. Whole tables (the SVM suite, the 3-student-seed distillation) are checked row by row.
Run from anywhere; exits non-zero on a mismatch. ``tests/test_numbers.py`` runs it::

    .venv/bin/python benchmarks/check_numbers.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def load(name: str):
    return json.loads((RESULTS / name).read_text())


def pct(v: float, digits: int = 2) -> str:
    return f"{100 * v:.{digits}f}"


def _students(d, key):
    s = d["students"][key]
    return f"{pct(s['mean'])} ± {pct(s['std'])} %"


def _sweep(name, config):
    return next(r for r in load(name)["rows"] if r["config"]["name"] == config)


def claims() -> list[tuple[str, str]]:
    """(page, text that must appear in it), the text built from the JSON."""
    distill = load("distill_fmnist.json")
    step = load("step_time.json")["median_seconds"]
    sel = load("select_fmnist.json")
    dsv = load("dsv_lambda_vs_accuracy.json")
    svm = load("sanity_check.json")
    norms = {(r["dataset"], r["C"]): r for r in load("svm_norms.json")}
    ent = sel["entropy"]
    pc = sel["per_class"]
    solved = sum(r["synth_stationarity_residual"] < 0.01 for r in svm)
    out = [
        ("README.md", f"on 10 real images/class | {_students(distill, 'real')} |"),
        ("README.md", f"on DSVs initialised from those images | {_students(distill, 'dsv_real')} |"),
        ("README.md", f"on DSVs from noise | {_students(distill, 'dsv_noise')} |"),
        ("README.md", f"same batch of 100 | {step['ratio_default']:.1f}× (median of 11) |"),
        (
            "README.md",
            f"{sel['ratio_to_epoch']:.2f}× ({sel['selection_seconds']:.0f} s / {sel['epoch_seconds']:.0f} s)",
        ),
        ("README.md", f"| {ent['support_lambda_gt_0']:.3f} / {ent['all']:.3f} |"),
        ("README.md", f"Pearson {dsv['pearson']:.3f}".replace("-", "−")),
        ("README.md", f"Pearson {pc['pearson']:.2f} |".replace("-", "−")),
        ("README.md", f"inside the margin in {solved} of {len(svm)}"),
        ("README.md", f"{len({r['dataset'] for r in svm})} datasets × C ∈ {{0.1, 1, 10}}"),
        ("docs/svm.md", f"**{solved} of {len(svm)} cases**"),
        ("docs/defaults.md", f"takes a median {step['kkt_step_s_default']:.2f} s against"),
        ("docs/defaults.md", f"{step['train_step_s']:.3f} s for one plain training step"),
        ("docs/defaults.md", f"**{step['ratio_default']:.1f}×**"),
        ("docs/defaults.md", f"takes {step['kkt_step_s_paper_eq9']:.2f} s, {step['ratio_paper_eq9']:.1f}×"),
        (
            "docs/defaults.md",
            f"Teacher: the reference ConvNet-3 ({pct(distill['teacher']['test_accuracy'], 1)} % test)",
        ),
        (
            "docs/selection.md",
            f"the reference ConvNet, {pct(sel['teacher']['test_accuracy'])} % test accuracy",
        ),
        (
            "docs/selection.md",
            f"| one training epoch of the same model, same run | {sel['epoch_seconds']:.1f} s |",
        ),
        ("docs/selection.md", f"CountSketch: {sel['gradient_seconds']:.1f} s;"),
        (
            "docs/selection.md",
            f"over all 60,000 samples: {sel['selection_seconds'] - sel['gradient_seconds']:.0f} s) "
            f"| {sel['selection_seconds']:.1f} s |",
        ),
        ("docs/selection.md", f"| ratio to one epoch | **{sel['ratio_to_epoch']:.2f}×** |"),
        (
            "docs/selection.md",
            f"{sel['solver']['fista_iterations']} FISTA iterations + working-set NNLS, "
            f"{sel['solver']['rounds']} rounds",
        ),
        ("docs/selection.md", f"`n_violations: {sel['solver']['n_violations']}`"),
        ("docs/selection.md", f"| {sel['solver']['residual']:.0e} |".replace("e-15", "e-15")),
        (
            "docs/selection.md",
            f"| {sel['stationarity']['cosine']:.3f}, {sel['stationarity']['rel_l2']:.2f} |",
        ),
        ("docs/selection.md", f"| {sel['n_support']:,} (= `projection_dim`) |"),
        ("docs/selection.md", f"the mean over all 60,000 is {ent['all']:.3f}"),
        (
            "docs/selection.md",
            f"| support set (λ > 0, {sel['n_support']:,} samples) | **{ent['support_lambda_gt_0']:.3f}** |",
        ),
        (
            "docs/selection.md",
            f"| outside the support set ({60000 - sel['n_support']:,}) | {ent['non_support']:.3f} |",
        ),
        ("docs/selection.md", f"| top 10 λ per class (100) | {ent['top_10_per_class']:.3f} |"),
        (
            "docs/selection.md",
            "| bottom 10 λ per class of the support set (100) | "
            f"{ent['bottom_10_per_class_of_support']:.3f} |",
        ),
        (
            "docs/selection.md",
            f"| bottom 10 λ per class overall (100, all λ = 0) | {ent['bottom_10_per_class']:.3f} |",
        ),
        ("docs/selection.md", f"{ent['support_lambda_gt_0'] / ent['all']:.1f} times the mean entropy"),
        (
            "docs/selection.md",
            f"**Pearson {pc['pearson']:.3f}, Spearman {pc['spearman']:.3f}**".replace("-", "−"),
        ),
        (
            "docs/selection.md",
            f"(shirt: Σλ = {pc['lambda_sum'][6]:.1f} at {pct(pc['test_accuracy'][6], 1)} % accuracy;",
        ),
        ("docs/selection.md", f"trouser: {pc['lambda_sum'][1]:.1f} at {pct(pc['test_accuracy'][1], 1)} %)"),
        (
            "docs/selection.md",
            f"Pearson {dsv['pearson']:.3f}, Spearman {dsv['spearman']:+.3f}".replace("-", "−"),
        ),
    ]
    d8 = norms[("digits_3_vs_8", 0.1)]
    out += [
        ("docs/svm.md", f"`‖w‖² = {d8['w_norm_sq']:.2f}`"),
        ("docs/svm.md", f"so {d8['n_synthetic_per_class']} DSVs per class are made"),
    ]
    for name, key in (("sweep7.json", "noise_default150"), ("sweep7.json", "noise_augTN")):
        r = _sweep(name, key)
        accs = " / ".join(pct(a) for a in r["accuracies"])
        out.append(("docs/defaults.md", f"{accs} % | "))
        out.append(("docs/defaults.md", f"{pct(r['mean'])} %"))
    for key in ("real_default", "real_augTN"):
        r = _sweep("sweep8.json", key)
        accs = " / ".join(pct(a) for a in r["accuracies"])
        out.append(("docs/defaults.md", f"{accs} % (mean {pct(r['mean'])} %)"))
    # the 3-student-seed table, row by row
    rows = {
        "10 real images per class": "real",
        "DSVs from those images (60 steps, lr 0.01)": "dsv_real",
        "DSVs from noise (300 steps, lr 0.05)": "dsv_noise",
    }
    for label, key in rows.items():
        s = distill["students"][key]
        accs = " | ".join(pct(a) for a in s["accuracies"])
        out.append(("docs/defaults.md", f"| {label} | {accs} | **{pct(s['mean'])} ± {pct(s['std'])}** |"))
    return out


def explain_claims() -> list[tuple[str, str]]:
    """docs/explain.md against the evaluate_*.json files of ``kktexplain evaluate``."""
    page = "docs/explain.md"
    out = []
    fm = load("evaluate_fmnist.json")
    mis = fm["mislabels"]
    rows = {
        "self-influence λ_j ‖∇L_j‖² (ours)": ("self_influence", True),
        "raw λ": ("lambda", False),
        "support by self-influence, then the rest by loss": ("self_influence_then_loss", False),
        "plain loss": ("loss", True),
        "`TracInCP.self_influence`": ("tracin", True),
    }
    for label, (key, timed) in rows.items():
        r = mis[key]
        secs = f"{r['seconds']:.0f}" if timed else ""
        out.append((page, f"| {label} | {r['roc_auc']:.3f} | {r['flipped_in_top10']:.3f} | {secs} |"))
    ic = fm["identical_class"]
    for key in ("ours", "representer", "grad_cosine", "tracin"):
        out.append((page, f"| {ic[key]['identical_class']:.3f} | {ic[key]['seconds']:.0f} |"))
    out.append((page, f"support gradients: {fm['support_seconds']:.0f} s"))
    out.append((page, f"test accuracy {fm['noisy_model']['test_accuracy_first_2000']:.3f}"))
    screen = load("mislabel_ridge_screen.json")

    def auc(seed: int, method: str) -> float:
        return next(r["roc_auc"] for r in screen if r["seed"] == seed and r["method"] == method)

    none = "self_influence[last_layer, ridge=None]"
    out.append((page, f"{auc(0, none):.3f} and {auc(1, none):.3f} without a ridge"))
    means = [
        (auc(0, f"self_influence[last_layer, ridge={r}]") + auc(1, f"self_influence[last_layer, ridge={r}]"))
        / 2
        for r in ("0.0001", "0.001", "0.01")
    ]
    out.append((page, f"{means[0]:.2f}, {means[1]:.2f} and {means[2]:.2f} on average"))
    out.append((page, f"{auc(0, 'loss'):.3f}/{auc(1, 'loss'):.3f} for the"))
    out.append((page, f"{auc(0, 'tracin'):.3f}/{auc(1, 'tracin'):.3f} for TracInCP"))
    t = fm["timing"]
    out.append((page, f"{t['explain_one_image_seconds_median']:.1f} s"))
    out.append((page, f"{t['ours_influence_one_query_seconds_median']:.3f} s"))
    out.append((page, f"{t['tracin_influence_one_query_seconds']:.0f} s"))
    for r in fm.get("randomization", []):
        out.append((page, f"| `{r['layer']}` | {r['spearman']:.2f} | {r['spearman_ig']:.2f} |"))
    rm = load("evaluate_removal.json")["removal"]
    for key, label in (("ours", "our top-20 proponents"), ("tracin", "TracInCP's top-20 proponents")):
        d = rm["margin_drop"][key]
        out.append((page, f"| {label} | {d['mean']:.2f} ± {d['sem']:.2f} |"))
    out.append((page, f"| the 50% of lowest λ | {rm['prediction_change']['lowest_lambda']:.3f} |"))
    out.append((page, f"| a random 50% | {rm['prediction_change']['random']:.3f} |"))
    if (RESULTS / "evaluate_fidelity.json").is_file():
        for r in load("evaluate_fidelity.json")["fidelity"]:
            out.append(
                (
                    page,
                    f"| {r['model']} | {r['scope']} | {r['stationarity_cosine']:.3f} | "
                    f"{r['argmax_agreement']:.3f} | {r['logit_pearson']:.3f} | "
                    f"{r['relative_residual']:.3f} | {r['quantity_logit_pearson']:.3f} |",
                )
            )
    return out


def svm_table_errors() -> list[str]:
    """Every row of the table in docs/svm.md against sanity_check.json."""
    text = (ROOT / "docs" / "svm.md").read_text()
    rows = {(r["dataset"], r["C"]): r for r in load("sanity_check.json")}
    errors, seen = [], 0
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 9 or cells[0] not in {k[0] for k in rows}:
            continue
        seen += 1
        r = rows[(cells[0], float(cells[1]))]
        want = [
            cells[0],
            f"{r['C']:g}",
            f"{r['f1']:.3f}",
            f"{r['pearson']:.4f}",
            f"{r['stationarity_residual']:.1e}",
            f"{r['margin_deviation']:+.3f}",
            f"{r['synth_feasibility']:.2f}",
            f"{r['synth_active_fraction']:.2f}",
            f"{r['synth_stationarity_residual']:.3f}",
        ]
        want[5] = want[5].replace("+", "-") if r["margin_deviation"] < 0 else want[5]
        if cells != want:
            errors.append(f"docs/svm.md row {cells} != sanity_check.json {want}")
    if seen != len(rows):
        errors.append(f"docs/svm.md has {seen} suite rows, sanity_check.json {len(rows)}")
    return errors


def check() -> list[str]:
    errors = []
    pages: dict[str, str] = {}
    for page, text in claims() + explain_claims():
        body = pages.setdefault(page, re.sub(r"\s*\n\s*", " ", (ROOT / page).read_text()))
        if re.sub(r"\s+", " ", text) not in body:
            errors.append(f"{page}: expected {text!r} (from benchmarks/results/)")
    return errors + svm_table_errors()


def main() -> int:
    errors = check()
    for e in errors:
        print("MISMATCH", e)
    n = len(claims()) + len(explain_claims())
    print(f"{n} claims + the SVM table checked, {len(errors)} mismatches")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
