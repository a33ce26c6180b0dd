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
import statistics
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
    step_cpu = load("step_time_cpu.json")["median_seconds"]
    scopes = load("step_time_scopes.json")["median_seconds"]
    scopes_cpu = load("step_time_scopes_cpu.json")["median_seconds"]
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
        (
            "docs/defaults.md",
            f"median {step['kkt_step_s_default']:.2f} s against {step['train_step_s']:.3f} s "
            "for one plain training step",
        ),
        (
            "docs/defaults.md",
            f"takes {step_cpu['train_step_s']:.3f} s, a default DeepKKT step "
            f"{step_cpu['kkt_step_s_default']:.2f} s, "
            f"**{step_cpu['ratio_default']:.2f}×**; `paper_eq9` {step_cpu['ratio_paper_eq9']:.2f}×, "
            f"`paper_alg1` {step_cpu['ratio_paper_alg1']:.2f}×",
        ),
        (
            "README.md",
            f"{sel['ratio_to_epoch']:.2f}× ({sel['selection_seconds']:.0f} s / {sel['epoch_seconds']:.0f} s)",
        ),
        *[
            (
                "docs/defaults.md",
                f"| `{p}` | {scopes['ratio_' + p]:.2f}× | {scopes['ratio_' + p + '_free']:.2f}× | "
                f"{scopes_cpu['ratio_' + p]:.2f}× | {scopes_cpu['ratio_' + p + '_free']:.2f}× |",
            )
            for p in ("default", "paper_eq9", "paper_alg1")
        ],
        (
            "docs/defaults.md",
            f"The training step took {scopes['train_step_s']:.3f} s (2 threads) and "
            f"{scopes_cpu['train_step_s']:.3f} s (1 thread)",
        ),
        (
            "docs/defaults.md",
            f"{scopes['ratio_default_free']:.2f}× (2 threads) and "
            f"{scopes_cpu['ratio_default_free']:.2f}× (1 thread)",
        ),
        (
            "docs/defaults.md",
            f"took {scopes['train_step_s']:.3f} s\nhere against {step['train_step_s']:.3f} s there, "
            "the default "
            f"DeepKKT step {scopes['kkt_step_s_default']:.2f} s against {step['kkt_step_s_default']:.2f} s",
        ),
        ("README.md", f"| {ent['support_lambda_gt_0']:.3f} / {ent['all']:.3f} |"),
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


def selection_claims() -> list[tuple[str, str]]:
    """docs/selection.md's two-stage table and README's row against select_fmnist_kronecker_*.json."""
    page = "docs/selection.md"
    a, b = load("select_fmnist_kronecker_tol.json"), load("select_fmnist_kronecker_refit.json")
    out = [
        (page, f"| one training epoch, same run | {a['epoch_seconds']:.0f} s | {b['epoch_seconds']:.0f} s |"),
        (
            page,
            f"| {a['selection_seconds']:.0f} s ({a['gradient_seconds']:.0f} s) | "
            f"{b['selection_seconds']:.0f} s ({b['gradient_seconds']:.0f} s) |",
        ),
        (
            page,
            f"| **{a['ratio_to_epoch']:.2f}×** ({a['cpu_ratio_to_epoch']:.2f}×) | "
            f"**{b['ratio_to_epoch']:.2f}×** ({b['cpu_ratio_to_epoch']:.2f}×) |",
        ),
        (
            page,
            f"| exact stationarity cosine | {a['stationarity']['cosine']:.3f} | "
            f"**{b['stationarity']['cosine']:.3f}** |",
        ),
        (page, f"| samples with λ > 0 | {a['n_support']:,} | {b['n_support']:,} |"),
        (
            "README.md",
            f"exact stationarity cosine {b['stationarity']['cosine']:.3f} | {b['ratio_to_epoch']:.2f}× "
            f"({b['selection_seconds']:.0f} s / {b['epoch_seconds']:.0f} s) |",
        ),
    ]
    for r in load("select_rss_two_stage.json")["rows"]:
        out.append(
            (
                page,
                f"| {r['n']:,} | {r['baseline_rss_mb']:,.0f} MiB | {r['peak_rss_mb']:,.0f} MiB | "
                f"{r['selection_mb']:,.0f} MiB | {r['g_matrix_mb']:.0f} MiB | {r['seconds']:.0f} s | "
                f"{r['stationarity_cosine']:.3f} |",
            )
        )
    for r in load("select_rss_flat.json")["rows"] + load("select_rss_flat_count.json")["rows"]:
        out.append(
            (
                page,
                f"| {r['n']:,} | {r['baseline_rss_mb']:,.0f} MiB | {r['peak_rss_mb']:,.0f} MiB | "
                f"{r['selection_mb']:,.0f} MiB | {r['g_matrix_mb']:.0f} MiB | "
                f"{r['selection_mb'] - r['g_matrix_mb']:,.0f} MiB | {r['seconds']:.0f} s | "
                f"{r['stationarity_cosine']:.3f} |",
            )
        )
    flat_count = {r["n"]: r for r in load("select_rss_flat_count.json")["rows"]}
    off = load("select_rss_offload.json")["rows"]
    two = load("select_rss_flat.json")["rows"]

    def mib(rows, minus_matrix=False):
        vals = [r["selection_mb"] - (r["g_matrix_mb"] if minus_matrix else 0) for r in rows]
        return f"{vals[0]:,.0f}, {vals[1]:,.0f} and {vals[2]:,.0f} MiB"

    out.append((page, f"selection adds {mib(off)} at 10,000,"))
    out.append((page, f"against {mib(list(flat_count.values()))} in memory"))
    out.append((page, f"({off[0]['n_support']} against {flat_count[10000]['n_support']})"))
    working = mib(two, True).replace(" MiB", "")
    out.append((page, f"{working} MiB with two stages"))
    out.append((page, f"and {mib(list(flat_count.values()), True)} with the defaults"))
    for r in load("select_rss_offload.json")["rows"]:
        c = flat_count[r["n"]]
        out.append(
            (
                page,
                f"| {r['n']:,} | {r['baseline_rss_mb']:,.0f} MiB | {r['peak_rss_mb']:,.0f} MiB | "
                f"**{r['selection_mb']:,.0f} MiB** | {c['selection_mb']:,.0f} MiB | "
                f"{r['g_matrix_mb']:.0f} MiB | "
                f"{r['seconds']:.0f} s | {c['seconds']:.0f} s | {r['stationarity_cosine']:.3f} |",
            )
        )
    return out


def linear_grads_claims() -> list[tuple[str, str]]:
    """docs/selection.md against linear_grads_time.json (the factored Linear path)."""
    r = load("linear_grads_time.json")
    m = r["median_seconds"]
    return [
        (
            "docs/selection.md",
            f"medians of 3: {m['factored']:.2f} s\n  against {m['vmap']:.2f} s for `vmap` "
            f"({r['vmap_over_factored']:.2f}×), close to a plain forward pass ({m['forward']:.2f} s), "
            f"equal to {r['max_abs_difference']:.1e}".replace("e-0", "e-"),
        )
    ]


def invariance_claims() -> list[tuple[str, str]]:
    """docs/residuals.md's scale-invariance section against invariance.json."""
    page = "docs/residuals.md"
    d = load("invariance.json")
    rows = {(r["what"], r["scope"]): r for r in d["rows"]}
    sel, syn = "selection_2000", "synthesis_100_real_init"
    cls = "classifier.weight"
    return [
        (page, f"cannot exceed {d['max_cosine_all_parameters']:.3f}**"),
        (page, f"| {rows[(sel, 'all')]['cosine']:.3f} | **{rows[(sel, 'free')]['cosine']:.3f}** |"),
        (page, f"| {rows[(syn, 'all')]['cosine']:.3f} | {rows[(syn, 'free')]['cosine']:.3f} |"),
        (
            page,
            f"fell from {rows[(syn, 'all')]['per_layer_cosine'][cls]:.3f} to\n"
            f"{rows[(syn, 'free')]['per_layer_cosine'][cls]:.3f})",
        ),
        *((page, row) for row in free_scope_rows()),
    ]


def free_scope_rows() -> list[str]:
    """The rows of docs/residuals.md's distillation table, from distillation_free_scope.json."""
    from scipy.stats import ttest_rel

    out = []
    for ipc, t in load("distillation_free_scope.json")["table"].items():
        acc = {k: [a for e in v["per_synth_seed"] for a in e["accuracies"]] for k, v in t.items()}

        def cell(k, acc=acc):
            return f"{100 * statistics.mean(acc[k]):.1f} ± {100 * statistics.stdev(acc[k]):.1f}"

        def diff(a, b, acc=acc):
            d = 100 * (statistics.mean(acc[a]) - statistics.mean(acc[b]))
            return f"{d:+.1f} (p = {float(ttest_rel(acc[a], acc[b]).pvalue):.3f})"

        out.append(
            f"| {ipc} | {cell('random')} | {cell('dsv_kshot')} | {cell('dsv_kshot_free')} | "
            f"{diff('dsv_kshot', 'random')} | {diff('dsv_kshot_free', 'random')} | "
            f"{diff('dsv_kshot_free', 'dsv_kshot')} |"
        )
    return out


def explain_claims() -> list[tuple[str, str]]:
    """docs/explain.md against the evaluate_*.json files of ``kktexplain evaluate``."""
    page = "docs/explain.md"
    out = []
    fm = load("evaluate_fmnist.json")
    mis = fm["mislabels"]
    rows = {
        "self-influence c ‖∇L_j‖², equal multipliers (ours)": ("self_influence", True),
        "self-influence λ_j ‖∇L_j‖², fitted λ": ("self_influence_fit", True),
        "raw fitted λ": ("lambda_fit", False),
        "fitted support by self-influence, then the rest by loss": ("self_influence_fit_then_loss", False),
        "plain loss": ("loss", True),
        "`TracInCP.self_influence`": ("tracin", True),
        "`TracInCP.self_influence`, 3 epoch checkpoints": ("tracin_checkpoints", True),
    }
    for label, (key, timed) in rows.items():
        r = mis[key]
        secs = f"{r['seconds']:.0f}" if timed else ""
        out.append((page, f"| {label} | {r['roc_auc']:.3f} | {r['flipped_in_top10']:.3f} | {secs} |"))
    ours, tr, loss = mis["self_influence"], mis["tracin"], mis["loss"]
    trk = mis["tracin_checkpoints"]
    out.append((page, f"({ours['roc_auc']:.3f} against {tr['roc_auc']:.3f};\n{trk['roc_auc']:.3f} for"))
    out.append((page, f"({ours['roc_auc']:.3f}\nagainst {loss['roc_auc']:.3f})"))
    out.append(
        (
            page,
            f"({ours['seconds']:.0f} s against {trk['seconds']:.0f} s, "
            f"{ours['seconds'] / trk['seconds']:.2f}; "
            f"{ours['seconds']:.0f} s against {tr['seconds']:.0f} s,\n{ours['seconds'] / tr['seconds']:.2f})",
        )
    )
    out.append(
        (
            page,
            f"took {loss['seconds']:.0f} s against\n  TracInCP's {tr['seconds']:.0f} s in this run, "
            f"a ratio of {loss['seconds'] / tr['seconds']:.2f}",
        )
    )
    out.append((page, f"1,024 of {mis['support_size_fit']['n']:,} non-zero"))
    ic = fm["identical_class"]
    for key in ("ours", "representer", "grad_cosine", "tracin"):
        out.append((page, f"| {ic[key]['identical_class']:.3f} | {ic[key]['seconds']:.0f} |"))
    out.append((page, f"support gradients: {fm['support_seconds']:.0f} s"))
    out.append((page, f"test accuracy {fm['noisy_model']['test_accuracy_first_2000']:.3f}"))
    loo = load("mislabel_loo.json")
    out.append((page, f"with a cosine of {loo[0]['cosine']:.2f}."))
    for r in loo:
        out.append(
            (
                page,
                f"| {r['problem']} | {r['seed']} | {r['method']} | {r['roc_auc']:.4f} | "
                f"{r['flipped_in_top10']:.3f} |",
            )
        )
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
    out.append((page, f"16 steps): {t['explain_one_image_seconds_median']:.1f} s"))
    out.append((page, f"{t['ours_influence_one_query_seconds_median']:.3f} s (median of 5)"))
    out.append((page, f"against {t['tracin_influence_one_query_seconds']:.0f} s for"))
    out.append((page, f"cached gradients first ({t['support_cache_seconds']:.0f} s, once"))
    for r in fm.get("randomization", []):
        out.append((page, f"| `{r['layer']}` | {r['spearman']:.2f} | {r['spearman_ig']:.2f} |"))
    rm = load("evaluate_removal.json")["removal"]
    for key, label in (
        ("ours", "our top-20 proponents"),
        ("tracin", "TracInCP's top-20 proponents"),
        ("random", "20 random samples"),
    ):
        d = rm["margin_drop"][key]
        out.append((page, f"| {label} | {d['mean']:.2f} ± {d['sem']:.2f} |"))
    pair = rm["paired_ours_minus_tracin"]
    out.append((page, f"**+{pair['mean']:.2f} ± {pair['sem']:.2f}**; ours moved the margin"))
    out.append((page, f"more for {pair['ours_larger']} of {rm['n_test']}."))
    out.append((page, f"(equal-multiplier cosine {rm['stationarity_cosine']:.3f})"))
    out.append(
        (
            page,
            f"{rm['global_support_size']} of 1,437 non-zero, stationarity cosine "
            f"{rm['global_stationarity_cosine']:.3f}",
        )
    )
    out.append((page, f"| the 50% of lowest λ | {rm['prediction_change']['lowest_lambda']:.3f} |"))
    out.append((page, f"| a random 50% | {rm['prediction_change']['random']:.3f} |"))
    for r in load("removal_heldout.json"):
        d, pr = r["margin_drop"], r["paired_ours_minus_tracin"]
        out.append(
            (
                page,
                f"| {r['split']} | {r['hidden']} | {r['steps']} | "
                f"{d['ours']['mean']:.2f} ± {d['ours']['sem']:.2f} | "
                f"{d['tracin']['mean']:.2f} ± {d['tracin']['sem']:.2f} | "
                f"{d['random']['mean']:.2f} ± {d['random']['sem']:.2f} | "
                f"{pr['mean']:+.2f} ± {pr['sem']:.2f} | {pr['ours_larger']} of {r['n_test']} |",
            )
        )
    mll = load("mislabel_lastlayer.json")["rows"]
    labels = {
        "plain loss": mll["loss"],
        "equal multipliers: ‖∇L_j‖² on the last layer": mll["equal_lambda_self_influence"],
        "NNLS λ, 200 projected-gradient iterations": mll["nnls_fista200"]["lambda"],
        "NNLS self-influence λ_j ‖∇L_j‖², 200 iterations": mll["nnls_fista200"]["self_influence"],
        "NNLS λ, 1,600 iterations": mll["nnls_fista1600"]["lambda"],
        "NNLS self-influence λ_j ‖∇L_j‖², 1,600 iterations": mll["nnls_fista1600"]["self_influence"],
        "last layer refitted with L2: loss": mll["refit_last_layer_l2"]["loss"],
        "last layer refitted with L2: equal multipliers": mll["refit_last_layer_l2"][
            "equal_lambda_self_influence"
        ],
    }
    for label, m in labels.items():
        out.append((page, f"| {label} | {m['roc_auc']:.3f} | {m['flipped_in_top10']:.3f} |"))
    n16 = mll["nnls_fista1600"]
    out.append((page, f"still leaves {n16['relative_residual'] * 100:.0f}% of"))
    out.append((page, f"flipped labels at {n16['self_influence']['roc_auc']:.3f}."))
    agree = mll["refit_last_layer_l2"]["agreement_with_network"]
    out.append((page, f"agreeing with the network on {agree * 100:.1f}% of the training images"))
    fe = load("fidelity_lastlayer_exact.json")["rows"][0]
    out.append(
        (
            page,
            f"{fe['seconds']:.0f} s on the idle machine): "
            f"stationarity cosine {fe['stationarity_cosine']:.3f}, "
            f"argmax agreement\n  **{fe['argmax_agreement']:.3f}**, logit Pearson {fe['logit_pearson']:.3f}, "
            f"relative residual {fe['relative_residual']:.3f}, with\n  {fe['n_support']} of the 2,000 images",
        )
    )
    scope = load("mislabel_scope.json")
    out.append(
        (
            "docs/explain.md",
            f"flips at {scope['free']['roc_auc']:.4f}, and over every parameter at "
            f"{scope['all']['roc_auc']:.4f}, "
            f"against {scope['last_layer']['roc_auc']:.4f} in the last layer and\n  "
            f"{scope['loss']['roc_auc']:.4f} for the loss",
        )
    )
    out.append(
        (
            "docs/explain.md",
            f"at {scope['free']['seconds']:.0f} s and {scope['all']['seconds']:.0f} s against the last "
            f"layer's {scope['last_layer']['seconds']:.0f} s",
        )
    )
    demo = load("demo_time.json")
    out.append(("docs/getting-started.md", f"**{demo['wall_seconds']:.0f} s wall**"))
    out.append(("docs/getting-started.md", f"({demo['user_seconds']:.0f} s user;"))
    ready = load("readiness.json")["rows"]
    for r in ready:
        out.append(
            (
                page,
                f"| {r['model']} | {r['scope']} | {r['cosine']:.3f} | {pct(r['argmax_agreement'], 1)} % | "
                f"{r['verdict']} | {r['implied_weight_decay']:.2g} |",
            )
        )
    wd_row = next(r for r in ready if r["model"] == "digits_mlp_fullbatch_wd" and r["scope"] == "all")
    out.append((page, f"recovers it to within {abs(wd_row['implied_weight_decay'] / 1e-3 - 1) * 100:.0f}%"))
    fid = {(r["model"], r["scope"]): r for r in load("evaluate_fidelity.json")["fidelity"]}
    ref_last = next(r for r in ready if r["model"] == "digits_mlp_reference" and r["scope"] == "last_layer")
    out.append(
        (
            page,
            f"reach a cosine of {fid[('digits_mlp_reference', 'last_layer')]['stationarity_cosine']:.3f} "
            f"on the digits reference MLP's\nlast layer where equal ones reach {ref_last['cosine']:.3f}",
        )
    )
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


def _rows(name: str) -> list[dict]:
    """The rows of a sweep result: a .json with ``rows`` or a .jsonl log, one row a line."""
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in (RESULTS / name).read_text().splitlines() if line.strip()]
    return load(name)["rows"]


def _row(name: str, config: str) -> dict:
    return next(r for r in _rows(name) if r["config"]["name"] == config)


def defaults_claims() -> list[tuple[str, str]]:
    """docs/defaults.md (and the same numbers in docs/report.md) against the sweep and probe JSON."""
    page = "docs/defaults.md"
    out = []
    distill = load("distill_fmnist.json")
    students = distill["students"]
    # the screen from real images (one student seed), row by row; sweep1/2 moved_l2 was measured
    # against a shuffled batch, so the page prints n/a
    exp_a = load("exp_A_default100.json")
    real_rows = {
        "default, lr 0.01, 100 steps": (
            exp_a["synthesis"]["dsv_real"] | {"mean": exp_a["students"]["dsv_real"]["mean"]},
            False,
        ),
        "default, lr 0.003, 60 steps": (_row("sweep1.jsonl", "default_lr003"), False),
        "default + `reference=θ₀`, lr 0.01, 60 steps": (_row("sweep1.jsonl", "default_ref"), False),
        '`paper_eq9`, `dual="prune"`, lr 0.01, 60 steps': (_row("sweep1.jsonl", "paper_eq9"), False),
        "last layer only (`param_names`), lr 0.01, 60 steps": (_row("sweep2.jsonl", "lastlayer"), True),
        "plain CE primal, lr 0.01, 60 steps": (_row("sweep2.jsonl", "primal_ce"), True),
        "no augmentation, lr 0.01, 60 steps": (_row("sweep2.jsonl", "noaug"), True),
        "default, lr 0.05, 60 steps": (_row("sweep3.jsonl", "default_lr05"), True),
    }
    for label, (r, moved) in real_rows.items():
        m = f"{r['moved_l2']:.1f}" if moved else "n/a"
        out.append(
            (
                page,
                f"| {label} | {pct(r['mean'], 1)} % | {r['entropy_start']:.3f} → {r['entropy_end']:.3f} | "
                f"{r['stationarity_cosine']:.3f} | {m} |",
            )
        )
    ends = [r["entropy_end"] for r, _ in real_rows.values()]
    noise = _row("sweep4.jsonl", "noise_lr05")
    out.append(
        (
            page,
            f"ours **falls** ({real_rows['default, lr 0.003, 60 steps'][0]['entropy_start']:.3f} → "
            f"{min(ends):.2f} to {max(ends):.2f} from real images; {noise['entropy_start']:.2f} → "
            f"{noise['entropy_end']:.2f} from noise)",
        )
    )
    svm = load("sanity_check.json")
    solved = sum(r["synth_stationarity_residual"] < 0.01 for r in svm)
    out.append((page, f"{solved} of {len(svm)} cases solved with SGD"))
    # real images with every λ = 1 (three draws of 200 per class)
    rs = load("real_stationarity.json")
    cos_t = [r["target_theta"]["cosine"] for r in rs["rows"]]
    cos_d = [r["target_displacement"]["cosine"] for r in rs["rows"]]
    layer = [v for r in rs["rows"] for v in r["target_theta"]["per_layer_cosine"].values()]
    weights = [v for k, v in rs["theta_vs_init_per_layer_cosine"].items() if k.endswith(".weight")]
    out += [
        (page, f"3 epochs, {pct(rs['teacher']['test_accuracy'], 1)} % test accuracy), even 2,000"),
        (page, f"reach only `cos(θ*, −Σ∇θL)` = {min(cos_t):.3f} to {max(cos_t):.3f} over three draws"),
        (page, f"`θ* − θ_0` it is {min(cos_d):.3f} to {max(cos_d):.3f} (per-layer cosines against θ*"),
        (page, f"from {min(layer):.2f} to {max(layer):.2f}). Only the draw".replace("-", "−")),
        (page, f"θ* is {min(weights):.2f} to {max(weights):.2f} cosine-similar to θ_0 in every weight"),
        ("docs/report.md", f"with λ = 1 reach {min(cos_t):.3f} to {max(cos_t):.3f} (three draws"),
    ]
    n_real = {r["n"] for r in rs["rows"]}
    draws = {1: "one draw", 2: "two draws", 3: "three draws"}[len(rs["rows"])]
    out += [
        (page, f"{min(n_real):,} *real training images* ({max(n_real) // 10} per class)"),
        (page, f"{min(cos_t):.3f} to {max(cos_t):.3f} over {draws} of the images"),
    ]
    coss = [r["stationarity_cosine"] for k, (r, _) in real_rows.items() if "paper_eq9" not in k]
    out.append((page, f"{min(coss):.2f} to {max(coss):.2f}"))  # the per-tensor objective's sweeps
    out.append(
        (page, f"the 10 real images alone score {pct(students['real']['accuracies'][0], 1)} % with that seed")
    )
    stds = [students[k]["std"] for k in ("real", "dsv_real", "dsv_noise")]
    out.append((page, f"a standard deviation of {pct(min(stds))} to {pct(max(stds))} points"))
    # the 3-student-seed paragraph
    gain = [a - b for a, b in zip(students["dsv_real"]["accuracies"], students["real"]["accuracies"])]
    words = {0: "none", 1: "one", 2: "two", 3: "all three"}
    out.append(
        (
            page,
            f"on average by {100 * (students['dsv_real']['mean'] - students['real']['mean']):.1f} points and "
            f"on {words[sum(g > 0 for g in gain)]} seeds of three",
        )
    )
    out.append(
        (
            page,
            "The noise-initialised DSVs are "
            f"{100 * (students['real']['mean'] - students['dsv_noise']['mean']):.1f} points behind the "
            "real images",
        )
    )
    dn = distill["synthesis"]["dsv_noise"]
    out.append(
        (
            page,
            f"(feasibility {pct(dn['feasibility_rate'], 0)} %, {pct(dn['feasibility_aug_end'], 0)} % "
            f"on augmented views), entropy {dn['entropy_start']:.2f} → {dn['entropy_end']:.3f} and "
            f"stationarity cosine {dn['stationarity_cosine']:.3f}",
        )
    )
    # the noise screens (sweep4 = the default; sweep5, sweep6), one student seed
    out.append((page, f"where the default scores {pct(noise['mean'], 1)} %"))
    sweep5 = {
        "default, lr 0.05": noise,
        "+ TV 0.3": _row("sweep5.json", "noise_tv03"),
        "+ TV 1.0, norm 0.1": _row("sweep5.json", "noise_tv1_norm01"),
        "+ TV 0.3, init scale 0.2": _row("sweep5.json", "noise_scale02_tv03"),
        "+ TV 0.3, lr 0.02": _row("sweep5.json", "noise_tv03_lr02"),
    }
    for label, r in sweep5.items():
        out.append(
            (
                page,
                f"| {label} | {pct(r['mean'], 1)} % | {r['entropy_end']:.3f} | "
                f"{r['stationarity_cosine']:.3f} |",
            )
        )
    out.append(
        (
            page,
            f"From real images, TV 0.3 gave {pct(_row('sweep5.json', 'real_tv03')['mean'], 1)} % against "
            f"{pct(students['dsv_real']['accuracies'][0], 1)} % without it (student seed 0)",
        )
    )
    sweep6 = {
        "default (for reference, sweep4)": noise,
        "rel-l1 distance": _row("sweep6.json", "noise_rel_l1"),
        "rel-l1 distance, TN augmentation": _row("sweep6.json", "noise_rel_l1_augTN"),
        "**TN augmentation**": _row("sweep6.json", "noise_augTN"),
        "`paper_alg1` preset": _row("sweep6.json", "noise_paper_alg1"),
    }
    for label, r in sweep6.items():
        acc = f"{pct(r['mean'], 1)} %"
        acc = f"**{acc}**" if label.startswith("**") else acc
        feas = "" if label.startswith("default") else f" {r['feasibility_aug_end']:.2f}"
        out.append(
            (
                page,
                f"| {label} | {acc} | {r['entropy_end']:.3f} | {r['stationarity_cosine']:.3f} |{feas} |",
            )
        )
    tn, rel = sweep6["**TN augmentation**"], sweep6["rel-l1 distance"]
    rel_tn, alg1 = sweep6["rel-l1 distance, TN augmentation"], sweep6["`paper_alg1` preset"]
    out.append(
        (page, f"worth about {100 * (tn['mean'] - noise['mean']):.0f} points from noise on this student seed")
    )
    out.append(
        (
            page,
            f"its norm ratio ends at {rel['stationarity_g_norm_ratio']:.3f}, "
            f"{rel_tn['stationarity_g_norm_ratio']:.3f} with TN augmentation; "
            f"{alg1['stationarity_g_norm_ratio']:.3f} with `paper_alg1`'s squared L2",
        )
    )
    out.append((page, f"does not reward ({tn['stationarity_g_norm_ratio']:.2f})"))
    s7 = {k: _row("sweep7.json", k) for k in ("noise_default150", "noise_augTN")}
    gap = 100 * (s7["noise_augTN"]["mean"] - s7["noise_default150"]["mean"])
    sd = sorted(100 * statistics.stdev(r["accuracies"]) for r in s7.values())
    out.append(
        (
            page,
            f"The {gap:.1f}-point gap is {gap / sd[1]:.0f} to {gap / sd[0]:.0f} times the standard deviation "
            f"over student seeds ({sd[0]:.2f} and {sd[1]:.2f} points)",
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


def residuals_claims() -> list[tuple[str, str]]:
    """docs/residuals.md: the residuals the reference models reach, from several result files."""
    page = "docs/residuals.md"
    syn = load("distill_fmnist.json")["synthesis"]
    sel = load("select_fmnist.json")["stationarity"]
    svm = load("sanity_check.json")
    fid = {(r["model"], r["scope"]): r for r in load("evaluate_fidelity.json")["fidelity"]}
    rs = load("real_stationarity.json")
    layer = [v for r in rs["rows"] for v in r["target_theta"]["per_layer_cosine"].values()]
    real, noise = syn["dsv_real"], syn["dsv_noise"]
    convnet = "fashion_mnist_convnet_reference"

    def stat_row(s: dict, prefix: str = "stationarity_") -> str:
        cos, ratio, rel = (s[prefix + k] for k in ("cosine", "g_norm_ratio", "rel_l2"))
        return f"| {cos:.3f} | {ratio:.2f} | {rel:.2f} |"

    return [
        (page, f"3 values of C) | — | — | ≤ {max(r['stationarity_residual'] for r in svm):.1e} |"),
        (page, f"{len({r['dataset'] for r in svm})} datasets × 3 values of C"),
        (page, f"all parameters | {fid[('digits_mlp_fullbatch_wd', 'all')]['stationarity_cosine']:.3f} |"),
        (page, f"last layer only | {fid[(convnet, 'last_layer')]['stationarity_cosine']:.3f} |"),
        (page, "all 60,000 training images, all parameters " + stat_row(sel, "")),
        (page, "100 DSVs synthesised from real images " + stat_row(real)),
        (page, "100 DSVs synthesised from noise " + stat_row(noise)),
        (page, f"range from {min(layer):.2f} to {max(layer):.2f}".replace("-", "−")),
        (page, f"(rate {real['feasibility_rate']:.2f}) with a mean entropy of {real['mean_entropy']:.3f}"),
        (page, f"a mean margin of {real['mean_margin']:.2f}, against {noise['mean_entropy']:.3f} and"),
        (page, f"{noise['mean_margin']:.2f} for the DSVs from noise"),
        (
            page,
            f"the feasibility is {real['feasibility_aug_end']:.2f} (from real images) and "
            f"{noise['feasibility_aug_end']:.2f} (from noise)",
        ),
    ]


def testing_claims() -> list[tuple[str, str]]:
    """docs/testing.md's mutation score against benchmarks/results/mutation.json."""
    page = "docs/testing.md"
    m = load("mutation.json")
    tot = m["total"]

    def interval(row) -> str:
        lo, hi = row["ci95_wilson"]
        return f"{100 * lo:.1f}–{'100' if hi == 1 else f'{100 * hi:.1f}'}%"

    out = [
        (page, f"mutmut generates {m['population']:,} mutants for these files"),
        (page, f"`SAMPLE={m['sample_size']} SEED={m['seed']}` from the {m['population']:,} mutants"),
        (page, f"**{tot['total']} of the {m['sample_size']}**"),
        (
            page,
            f"**{tot['killed']} killed, {tot['survived']} survived, {tot['equivalent']} equivalent**",
        ),
        (
            page,
            f"**{tot['killed']}/{tot['total'] - tot['equivalent']} = {100 * tot['score']:.1f}% "
            f"(95% Wilson interval {interval(tot)})**",
        ),
        (page, f"and {len(m['not_run'])} of the sample are still not run"),
    ]
    for module, row in m["by_module"].items():
        short = module.removeprefix("kktexplain.").replace("kkt.", "kkt/")
        n = row["total"] - row["equivalent"]
        out.append((page, f"`{short}` {row['killed']}/{n} ({interval(row)})"))
    for name in m["not_killed_or_equivalent"]:
        out.append((page, f"`{name.split(':')[0]}`"))
    return out


def readme_claims() -> list[tuple[str, str]]:
    """README.md's remaining numbers: the reference model's training time and the SVM summary."""
    sel = load("select_fmnist.json")
    svm = load("sanity_check.json")
    f1 = min(r["f1"] for r in svm)
    pearson = min(r["pearson"] for r in svm)
    bound = "0.99999" if pearson >= 0.99999 else f"{pearson:.5f}"
    feasible = ", all feasible" if all(r["synth_feasibility"] == 1.0 for r in svm) else ""
    return [
        (
            "README.md",
            f"first use (about {sel['teacher']['train_seconds'] / 60:.0f} minutes on 2 idle CPU cores)",
        ),
        ("README.md", f"| F1 = {f1:.3f}, Pearson ≥ {bound} everywhere |"),
        ("README.md", f"stationarity solved{feasible}, inside the margin in"),
    ]


def select_rss_claims() -> list[tuple[str, str]]:
    """docs/selection.md's peak-memory table against select_rss.json and select_rss_gradients.json."""
    page = "docs/selection.md"
    rss = load("select_rss.json")
    # the table and its diagnosis were measured before collect_gradients preallocated its matrix
    grad = {r["n"]: r for r in load("select_rss_gradients_before.json")["rows"]}
    now = load("select_rss_gradients.json")["rows"]
    card = rss["model_card"]
    out = [
        (page, f"{card['n_params']:,} parameters, one epoch, {pct(card['test_accuracy'])} % test accuracy"),
        (page, f"`projection_dim={rss['projection_dim']}` and `chunk_size={rss['chunk_size']}`"),
        (page, f"about {rss['selection_mb_per_1000_samples']:.0f} MiB per 1,000 samples"),
        (page, f"{rss['bytes_per_sample_per_sketch_dim']:.1f} bytes per entry"),
    ]
    mal = load("select_rss_malloc.json")["rows"][0]
    added = ", ".join(f"{r['selection_mb']:,.0f}" for r in rss["rows"])
    alone = ", ".join(f"{grad[r['n']]['gradient_pass_mb']:,.0f}" for r in rss["rows"])
    fixed, dynamic = mal["gradient_pass_mb"], grad[mal["n"]]["gradient_pass_mb"]
    out += [(page, f"Selection adds {added} MiB"), (page, f"alone adds {alone} MiB")]
    out.append((page, "adds " + ", ".join(f"{r['gradient_pass_mb']:,.0f}" for r in now) + " MiB"))
    out.append((page, "sketched matrices of " + ", ".join(f"{r['g_matrix_mb']:,.0f}" for r in now) + " MiB"))
    twice = 2 * mal["g_matrix_mb"]
    out.append((page, f"{fixed:,.0f} MiB instead of {dynamic:,.0f}: twice the matrix ({twice:,.0f} MiB)"))
    for r in rss["rows"]:
        g = grad[r["n"]]
        out.append(
            (
                page,
                f"| {r['n']:,} | {r['baseline_rss_mb']:,.0f} MiB | {r['peak_rss_mb']:,.0f} MiB | "
                f"{r['selection_mb']:,.0f} MiB | {g['gradient_pass_mb']:,.0f} MiB | "
                f"{r['g_matrix_mb']:,.0f} MiB | {r['seconds']:,.0f} s |",
            )
        )
    return out


def bounded_claims() -> list[tuple[str, str]]:
    """docs/selection.md's bounded-selection table against bounded_selection.json."""
    page = "docs/selection.md"
    rows = load("bounded_selection.json")["rows"]
    out = []
    for r in rows:
        legacy = r["legacy_bvls"]
        ucpu, bcpu = (statistics.median(r[k]) for k in ("unbounded_cpu_seconds", "bounded_cpu_seconds"))
        out.append(
            (
                page,
                f"| {r['case']} | {r['n']:,} | {r['upper']:.3g} | {r['unbounded_median_seconds']:.1f} s | "
                f"{r['bounded_median_seconds']:.1f} s | **{r['ratio']:.2f}×** | {ucpu:.1f} / {bcpu:.1f} | "
                f"{r['bounded_solver']['rounds']} | {r['bounded_at_upper']} / {r['bounded_free']} | "
                f"{legacy['seconds']:.0f} s ({legacy['cpu_seconds']:.0f} s CPU) |",
            )
        )
    viol = [f"{r['bounded_kkt_violation']:.1e}" for r in rows]
    legacy_viol = [f"{r['legacy_bvls']['kkt_violation']:.3f}" for r in rows]
    res = [f"{r['bounded_residual']:.6f}" for r in rows]
    out += [
        (page, f"conditions is {viol[0]} and {viol[1]} (relative"),
        (page, f"against {legacy_viol[0]} and {legacy_viol[1]} for BVLS"),
        (page, f"six digits ({res[0]} and {res[1]})."),
    ]
    out += [(page, f"{r['legacy_bvls']['residual']:.6f}") for r in rows]
    return out


def probe_claims() -> list[tuple[str, str]]:
    """docs/defaults.md's entropy probe against benchmarks/results/entropy_probe.json."""
    page = "docs/defaults.md"
    rows = {r["name"]: r for r in load("entropy_probe.json")["rows"]}
    u, b = rows["cosnorm_unbounded"], rows["cosnorm_C005"]
    return [
        (page, f"entropy_probe.py --steps {b['steps']} --per-class {b['per_class']}`"),
        (page, f"where {pct(1 - b['feasibility_aug_start'], 0)} % of the candidates start"),
        (
            page,
            f"`lambda_max={b['lambda_max']}` the entropy first dips ({b['entropy_start']:.3f} → "
            f"{b['entropy_min']:.3f} at step {b['entropy_min_step']}) and then **rises** to "
            f"{b['entropy_end']:.3f} while feasibility drops to {pct(b['feasibility'], 0)} %",
        ),
        (
            page,
            f"shrink to a mean of {u['lambda_mean']:.2f} and the entropy falls to {u['entropy_end']:.3f} "
            f"(feasibility {pct(u['feasibility'], 0)} %)",
        ),
    ]


CURVE_PER_CLASS = (1, 3, 10, 30, 100)


def _cos(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}".replace("-", "−")


def curve_tables() -> list[str]:
    """docs/residuals.md's stationarity curves: one table per scope (rows of cosines against N).

    Built from stationarity_curves.json; a point that was not run is "—". ``python
    benchmarks/check_numbers.py --curves`` prints the tables (the page quotes them verbatim).
    """
    rows = load("stationarity_curves.json")["rows"]

    def line(label: str, get) -> str:
        vals = []
        for k in CURVE_PER_CLASS:
            try:
                vals.append(_cos(get(k)))
            except KeyError:
                vals.append("—")
        return f"| {label} | " + " | ".join(vals) + " |"

    def synth(scope: str, k: int) -> dict:
        return rows[f"synth/{scope}/default/{k:03d}"]

    def sel(scope: str, k: int) -> dict:
        return rows[f"select/{scope}/{k:03d}"]

    header = "| N | " + " | ".join(f"{10 * k:,}" for k in CURVE_PER_CLASS) + " |"
    out = []
    for scope, name in (("all", "all parameters"), ("last", "last layer"), ("displacement", "displacement")):
        out += [f"**{name}**", "", header]
        out.append("|---|" + "---|" * len(CURVE_PER_CLASS))
        out.append(
            line(f"DSVs optimised for {name}", lambda k, s=scope: synth(s, k)["measured"][s]["cosine"])
        )
        if scope != "all":
            out.append(
                line(
                    "DSVs optimised for all parameters",
                    lambda k, s=scope: synth("all", k)["measured"][s]["cosine"],
                )
            )
        out.append(
            line(
                f"same DSVs, λ refitted by NNLS in {name}",
                lambda k, s=scope: synth(s, k)["refit"][s]["nnls_cosine"],
            )
        )
        out.append(line("NNLS over N real images", lambda k, s=scope: sel(s, k)["nnls_cosine"]))
        out.append(
            line(
                "λ of any sign over N real images (span bound)",
                lambda k, s=scope: sel(s, k)["span_bound_cosine"],
            )
        )
        out.append("")
    return out


def curve_variant_tables() -> list[str]:
    """docs/residuals.md's λ-parametrisation and objective tables (stationarity_curves.json)."""
    rows = load("stationarity_curves.json")["rows"]

    def cell(key: str, scope: str = "all") -> str:
        return _cos(rows[key]["measured"][scope]["cosine"]) if key in rows else "—"

    out = ["| λ (scope all parameters) | N = 10 | N = 100 |", "|---|---|---|"]
    for variant, label in (
        ("default", '`dual="exp"` (default)'),
        ("dual_clamp", '`dual="clamp"`'),
        ("dual_prune", '`dual="prune"` (paper)'),
        ("lambda_max_s", "`lambda_max` = the automatic scale s"),
    ):
        out.append(f"| {label} | " + " | ".join(cell(f"synth/all/{variant}/{k:03d}") for k in (1, 10)) + " |")
    out += [
        "",
        "| scope, N = 100 | per-tensor average (the default before) | global cosine (default) | "
        "default DSVs, λ refitted by NNLS |",
    ]
    out.append("|---|---|---|---|")
    for scope, name in (("last", "last layer"), ("all", "all parameters")):
        refit = rows.get(f"synth/{scope}/default/010", {}).get("refit", {}).get(scope, {}).get("nnls_cosine")
        out.append(
            f"| {name} | {cell(f'synth/{scope}/default/010', scope)} | "
            f"{cell(f'synth/{scope}/global_cosine/010', scope)} | {_cos(refit)} |"
        )
    base, glob = rows.get("synth/all/default/010"), rows.get("synth/all/global_cosine/010")
    if base is not None:
        sizes = load("stationarity_curves.json")["rows"]["bounds"]["tensor_sizes"]
        out += [
            "",
            "| tensor (size), N = 100 | per-tensor average (the default before) | global cosine (default) |",
            "|---|---|---|",
        ]
        for name, c in base["measured"]["all"]["per_layer_cosine"].items():
            g = "—" if glob is None else _cos(glob["measured"]["all"]["per_layer_cosine"][name])
            out.append(f"| `{name}` ({sizes[name]:,}) | {_cos(c)} | {g} |")
    return out


def curves_claims() -> list[tuple[str, str]]:
    """docs/residuals.md's "How far stationarity can hold: curves" against stationarity_curves.json."""
    page = "docs/residuals.md"
    d = load("stationarity_curves.json")
    rows, b = d["rows"], d["rows"]["bounds"]
    out = [
        (page, t) for t in curve_tables() + curve_variant_tables() if t.startswith("| ") and "---" not in t
    ]
    ready = b["readiness"]
    out += [
        (
            page,
            f"equal λ on {b['readiness_n']:,} training images gives {_cos(ready['all']['cosine'])} (all "
            f"parameters), {_cos(ready['last']['cosine'])} (last layer) and "
            f"{_cos(ready['displacement']['cosine'])} (displacement)",
        ),
        (
            page,
            f"bound is {_cos(b['centring_bound']['all'])}, {_cos(b['centring_bound']['last'])} and "
            f"{_cos(b['centring_bound']['displacement'])}",
        ),
        (
            page,
            f"cos(θ*, θ_0) is {_cos(b['theta_vs_theta0_cosine']['classifier.weight'])} for the classifier",
        ),
        (page, f"reaches **{_cos(rows['select/last/100']['nnls_cosine'])} at N = 1,000**"),
        (page, f"{d['total_cpu_seconds'] / 60:.0f} CPU-minutes"),
    ]
    sizes = b["tensor_sizes"]
    w, bias = sizes["classifier.weight"], sizes["classifier.bias"]
    out += [
        (page, f"`fashion_mnist_small`, {d['model']['n_parameters']:,} parameters"),
        (page, f"({w + bias:,} of the parameters)"),
        (page, f"{bias}-entry bias weighs as much as its {w:,}-entry weight"),
        (page, f"({100 * w / sum(sizes.values()):.0f} % of the parameters"),
    ]
    cost = rows["synth/all/default/100"]["cpu_seconds"] / 60
    out.append((page, f"The synthesis with N = 1,000 and its measurements took {cost:.0f} CPU-minutes"))
    gain = rows["synth/all/global_cosine/010"]["cosine"] / rows["synth/all/default/010"]["cosine"]
    word = {1: "", 2: "twofold", 3: "threefold", 4: "fourfold", 5: "fivefold"}[min(int(gain), 5)]
    out.append((page, f"raises the demo's all-parameter cosine more than {word} at N = 100"))
    return out


def distill_claims() -> list[tuple[str, str]]:
    """docs/distill.md's table against distillation_ipc1.json and distillation_ipc1_prior.json."""
    page = "docs/distill.md"
    main, prior = load("distillation_ipc1.json"), load("distillation_ipc1_prior.json")
    rows = {**main["table"]["1"], **prior["table"]["1"]}
    out = [
        (
            page,
            f"({pct(main['teacher_test_accuracy'], 1)} % on the {main['test_images']:,} test images scored)",
        ),
        (page, f"{main['protocol']['epochs']} epochs"),
    ]
    for key, row in rows.items():
        cell = f"| `{key}` | {pct(row['mean'], 1)} ± {pct(row['std'], 1)} | {row['n']} |"
        out.append((page, cell))
    for key, base in (("dsv_kshot", "random"), ("dsv_kshot_soft", "random_soft")):
        vs = rows[key][f"vs_{base}"]
        diff, p = 100 * vs["mean_difference"], vs["paired_t_pvalue"]
        out.append((page, f"{diff:+.1f} points (paired t-test p = {p:.2f})"))
    ten = load("distillation_ipc10.json")["table"]["10"]
    for key, row in ten.items():
        cell = f"| `{key}` (10 per class) | {pct(row['mean'], 1)} ± {pct(row['std'], 1)} | {row['n']} |"
        out.append((page, cell))
    vs = ten["dsv_kshot"]["vs_random"]
    diff, p = 100 * vs["mean_difference"], vs["paired_t_pvalue"]
    out.append((page, f"{diff:+.1f} points at 10 per class (paired t-test p = {p:.2f})"))
    return out


def _screen_cell(row: dict) -> str:
    """The config column of docs/generate.md's screen tables: the name, or the ``--extra`` argument."""
    cmd = row["command"]
    return f"`{cmd[cmd.index('--extra ') :]}`" if "--extra " in cmd else f"`{row['config']}`"


def generate_claims() -> list[tuple[str, str]]:
    """docs/generate.md against generation.json and generation_screen.json."""
    page = "docs/generate.md"
    g = load("generation.json")
    screen = load("generation_screen.json")["rows"]
    rows = {(r["part"], r["split"], r["config"]): r for r in screen}
    smp, bl, ed = g["sample"], g["blend"], g["edit"]
    judge, runs = g["judge"], smp["runs"]
    n_classes = len(runs[0]["judge_rate_per_class"])
    n_sample = sum(r["n"] for r in runs)
    gentle, default, fast = ed["budgets"]
    old_s, old_b, old_e = (rows[(p, "heldout", "old")] for p in ("sample", "blend", "edit"))
    # "ConvNet-3 width 128 instancenorm avgpool (fashion_mnist_convnet)", in the page's words
    name, _, width, norm, pool, key = g["judge2"]["architecture"].split(" ")
    words = {"instancenorm": "instance norm", "avgpool": "average pooling"}
    out = [
        (
            page,
            f"{g['seconds']:.0f} s on one thread (the judges cached); "
            "results in `benchmarks/results/generation.json`",
        ),
        (page, f"max pooling; {pct(g['teacher']['test_accuracy'], 1)} % test accuracy)"),
        (
            page,
            f"an {judge['architecture']} (seed {judge['seed']}, {judge['epochs']} epochs of Adam",
        ),
        (page, f"**{pct(judge['test_accuracy'], 1)} % test accuracy**, and the reference"),
        (page, f"**{pct(g['judge2']['test_accuracy'], 1)} % test accuracy**."),
        (
            page,
            f"the reference {name} (width {width}, {words.get(norm, norm)}, {words.get(pool, pool)}; "
            f'`load_reference_model("{key.strip("()")}")`',
        ),
        (page, f"the numbers below are on seeds {runs[0]['seed']}–{runs[-1]['seed']}"),
        # the held-out table; "before" is the screen's held-out `old` row
        (
            page,
            f"| `sample`, {runs[0]['n'] // n_classes} per class × {n_classes} classes × seeds "
            f"{', '.join(str(r['seed']) for r in runs)} ({n_sample}) | rate of the label | "
            f"{smp['teacher_rate']:.2f} | **{smp['judge_rate']:.2f}** (before: {old_s['mlp_rate']:.2f}) | "
            f"**{smp['judge2_rate']:.2f}** (before: {old_s['convnet_rate']:.2f}) |",
        ),
        (
            page,
            f"| `blend`, δ = {bl['delta']:g}, {len(bl['pairs'])} pairs × {bl['n_per_pair']} | "
            f"top-2 = {{a, b}} | {bl['teacher_top2_rate']:.2f} | "
            f"**{bl['judge_top2_rate']:.2f}** (before: {old_b['mlp_top2']:.2f}) | "
            f"**{bl['judge2_top2_rate']:.2f}** (before: {old_b['convnet_top2']:.2f}) |",
        ),
        (
            page,
            f"| `edit`, {ed['n']} images → a random other class, "
            f"{gentle['steps']} steps lr {gentle['lr']:g} | "
            f"target rate / SSIM | {gentle['teacher_rate']:.2f} | {gentle['judge_rate']:.2f} / "
            f"{gentle['ssim_mean']:.2f} | {gentle['judge2_rate']:.2f} |",
        ),
        (
            page,
            f"| `edit`, default {default['steps']} steps lr {default['lr']:g} | target rate / SSIM | "
            f"{default['teacher_rate']:.2f} | **{default['judge_rate']:.2f} / {default['ssim_mean']:.2f}** "
            f"(before: {old_e['mlp_rate']:.2f} / {old_e['ssim']:.2f}) | **{default['judge2_rate']:.2f}** "
            f"(before: {old_e['convnet_rate']:.2f}) |",
        ),
        (
            page,
            f"| `edit`, {fast['steps']} steps lr {fast['lr']:g} | target rate / SSIM | "
            f"{fast['teacher_rate']:.2f} | {fast['judge_rate']:.2f} / {fast['ssim_mean']:.2f} | "
            f"{fast['judge2_rate']:.2f} |",
        ),
        (page, f"mean over the {ed['n']} images"),
        (
            page,
            f"| `edit` | the image | target class | "
            f"{ed['default']['steps']} steps, lr {ed['default']['lr']:g}, "
            f"plain cross-entropy primal + TV prior {ed['default']['tv']:g}, no augmentation |",
        ),
        (page, f"The TV prior ({ed['default']['tv']:g}) is a small gain"),
        (page, f"Start from `steps={gentle['steps']}, lr={gentle['lr']:g}` for minimal"),
        (
            page,
            f"at the gentle schedule (SSIM {gentle['ssim_mean']:.2f}) {pct(gentle['judge_rate'], 0)} % (MLP) "
            f"and {pct(gentle['judge2_rate'], 0)} % (ConvNet)",
        ),
    ]
    # the interpolation strips: first and last column of each strip
    ip = g["interpolate"]
    j, j2 = ip["judge_p_b"], ip["judge2_p_b"]
    out.append(
        (
            page,
            f"the ConvNet judge's rises from {j2[0][0]:.2f} to {j2[0][-1]:.2f} on one strip and from "
            f"{j2[1][0]:.2f} to {j2[1][-1]:.2f} on the other, "
            f"the MLP's only to {j[0][-1]:.2f} and {j[1][-1]:.2f}.",
        )
    )
    # the screen's protocol and settings, as recorded in its rows
    tune_old = rows[("sample", "tune", "old")]
    n_tune = tune_old["n"]
    aug = rows[("sample", "tune", "aug")]["settings"]["augmentation"]
    st = tune_old["settings"]
    out += [
        (
            page,
            f"`sample` seed 1 with {n_tune // n_classes} per class = {n_tune} samples; `blend` the "
            f"{rows[('blend', 'tune', 'old')]['n'] // 4} tuning pairs × 4; `edit` "
            f"{rows[('edit', 'tune', 'old')]['n']} test images",
        ),
        (page, f"textures are around {tune_old['tv_ratio']:.0f})"),
        (
            page,
            f"(translate {aug['translate']:g}, crop {aug['crop']:g}, flip {aug['flip']:g}, "
            f"cutout {aug['cutout']:g}, noise {aug['noise']:g}, weight η = 5)",
        ),
        (
            page,
            f"({st['steps']} steps, lr {st['lr']:g}, `N(0, {st['init_scale']:g}²)`, the per-tensor cosine,",
        ),
    ]
    # the screen's three tables, one claim a row of the JSON
    for r in screen:
        head = f"| {r['split']} | {_screen_cell(r)} | "
        if r["part"] == "sample":
            cells = (
                f"{r['mlp_rate']:.2f} ({r['mlp_p_label']:.2f}) | "
                f"{r['convnet_rate']:.2f} ({r['convnet_p_label']:.2f}) | {r['tv_ratio']:.2f} |"
            )
        elif r["part"] == "blend":
            cells = (
                f"{r['mlp_top2']:.2f} | {r['convnet_top2']:.2f} | "
                f"{r['mlp_a_or_b_top1']:.2f} / {r['convnet_a_or_b_top1']:.2f} |"
            )
        else:
            cells = f"{r['mlp_rate']:.2f} | {r['convnet_rate']:.2f} | {r['ssim']:.2f} |"
        out.append((page, head + cells))
    # the teacher's rates the captions summarise
    samples = [r for r in screen if r["part"] == "sample"]
    imperfect = [r for r in samples if r["teacher_rate"] != 1.0]
    if not imperfect:
        out.append((page, "The teacher names the label of every sample in every row."))
    else:
        byc = {(r["split"], r["config"]): r["teacher_rate"] for r in imperfect}
        out.append(
            (
                page,
                f"row but two ({byc[('tune', 'aug_one')]:.2f} in the tuning `aug_one` row, "
                f"{byc[('tune_wide', 'low_tv0.1')]:.3f} in the second screen's `tune_wide` `low_tv0.1` row)",
            )
        )
        assert len(imperfect) == 2, imperfect

    blends = [r for r in screen if r["part"] == "blend"]
    other = [r for r in blends if r["teacher_top2"] != 1.0]
    caption = "(teacher 1.00 except " + " and ".join(
        f"{r['teacher_top2']:.2f} for the "
        f"{'held-out' if r['split'] == 'heldout' else 'tuning'} `{r['config']}`"
        for r in sorted(other, key=lambda r: r["split"] != "tune")
    )
    out.append((page, caption + "):"))
    edit_teacher = sorted({f"{r['teacher_rate']:.2f}" for r in screen if r["part"] == "edit"})
    out.append((page, f"target rate of each judge (teacher {' / '.join(edit_teacher)}) and SSIM"))
    # the prose after the screen
    minutes = sum(r["seconds"] for r in screen) / 60
    out.append((page, f"The runs of both screens took {minutes:.0f} minutes of one thread in all."))
    out.append((page, f"(a one-sample difference is {1 / n_tune:.2f} on {n_tune} samples)"))

    def mean_top2(config: str) -> float:
        r = rows[("blend", "tune", config)]
        return (r["mlp_top2"] + r["convnet_top2"]) / 2

    out.append(
        (page, f"For `blend`, `low` (mean {mean_top2('low'):.2f} against {mean_top2('old'):.2f} before)")
    )
    augmented = [r for r in samples if r["split"] == "tune" and r["settings"]["augmentation"] is not None]
    lo, hi = min(r["mlp_rate"] for r in augmented), max(r["mlp_rate"] for r in augmented)
    top = max(r["convnet_rate"] for r in augmented)
    out.append(
        (
            page,
            f"lowered the MLP judge's agreement from {tune_old['mlp_rate']:.2f} to {lo:.2f}–{hi:.2f} and "
            f"raised the ConvNet judge's to at most {top:.2f}",
        )
    )
    out.append((page, f"(TV ratio ≈ {rows[('sample', 'tune', 'tv0.1')]['tv_ratio']:.0f})"))
    new_s = rows[("sample", "heldout", "low_tv0.1")]
    out += [
        (
            page,
            f"names the label of {pct(smp['judge2_rate'], 0)} % of the samples "
            f"(before {pct(old_s['convnet_rate'], 0)} %)",
        ),
        (
            page,
            f"(MLP {old_s['mlp_p_label']:.2f} → {new_s['mlp_p_label']:.2f}, "
            f"ConvNet {old_s['convnet_p_label']:.2f} → {new_s['convnet_p_label']:.2f})",
        ),
    ]
    # the second screen (steps and schedule) and the held-out check of its choice
    wide = {r["config"]: r for r in samples if r["split"] == "tune_wide"}
    steps = [("low_tv0.1", 300), ("low_tv0.1_steps600", 600), ("low_tv0.1_steps1000", 1000)]
    chosen = rows[("sample", "heldout", "low_tv0.1_steps1000")]
    blend_low, blend_1000 = rows[("blend", "tune", "low")], rows[("blend", "tune", "low_steps1000")]
    out += [
        (
            page,
            "the MLP judge's rate rises with the steps, "
            + " → ".join(f"{wide[c]['mlp_rate']:.2f} ({n:,})" for c, n in steps)
            + f" → {wide['low_tv0.1_steps1500']['mlp_rate']:.2f} (1,500)",
        ),
        (
            page,
            f"**MLP judge {smp['judge_rate']:.2f}, ConvNet judge {smp['judge2_rate']:.2f}** (100 samples; "
            f"300 steps there: {new_s['mlp_rate']:.2f} and {new_s['convnet_rate']:.2f})",
        ),
        (page, f"held-out seeds: {chosen['mlp_rate']:.2f} (MLP"),
        (
            page,
            f"(MLP {blend_low['mlp_top2']:.2f} → {blend_1000['mlp_top2']:.2f}, "
            f"ConvNet {blend_low['convnet_top2']:.2f} → {blend_1000['convnet_top2']:.2f};",
        ),
        (
            page,
            f"{wide['low_tv0.1_steps1000']['seconds']:.0f} s for the {wide['low_tv0.1']['n']} samples on one "
            f"thread, against {wide['low_tv0.1']['seconds']:.0f} s at 300",
        ),
        (page, f"is {pct(judge['test_accuracy'], 1)} %) and {chosen['convnet_rate']:.2f} (ConvNet-3)"),
        (
            "README.md",
            f"{n_sample} samples (held-out seeds): rate at which two independently trained judges name "
            f"the label | MLP {smp['judge_rate']:.2f} / ConvNet-3 {smp['judge2_rate']:.2f}",
        ),
    ]
    return out


def svm_torch_fit_claims() -> list[tuple[str, str]]:
    """docs/svm.md's table of the torch fit on features in other units, before and now."""
    old = {r["problem"]: r for r in load("svm_torch_fit_before.json")}
    return [
        (
            "docs/svm.md",
            f"| {r['problem']} | {r['svc_kkt_violation']:.1e} | {old[r['problem']]['f1']:.3f} → "
            f"{r['f1']:.3f} | {old[r['problem']]['primal_torch']:.2f} → {r['primal_torch']:.2f} | "
            f"{r['primal_svc']:.2f} | {r['weights_gap']:.2g} |",
        )
        for r in load("svm_torch_fit.json")
    ]


def self_influence_batch_claims() -> list[tuple[str, str]]:
    """docs/explain.md's warm side-by-side times of the self-influence against TracInCP."""
    rows = {r["batch_size"]: r for r in load("self_influence_batch.json")["rows"]}
    again = load("self_influence_batch_256x3.json")["rows"][0]
    out = [
        (
            "docs/explain.md",
            f"{r['ours_seconds']:.1f} s against {r['tracin_seconds']:.1f} s ({r['ratio']:.2f}) at batch {b}",
        )
        for b, r in sorted(rows.items())
    ]
    return out + [
        (
            "docs/explain.md",
            f"{again['ours_seconds']:.1f} s against {again['tracin_seconds']:.1f} s",
        ),
    ]


def svm_heldout_claims() -> list[tuple[str, str]]:
    """docs/svm.md's held-out problems and SVC diagnostics, README's summary of them."""
    page = "docs/svm.md"
    h = load("svm_heldout.json")
    svm = load("sanity_check.json")
    out = []
    labels = {"tuning": "tuning (seeds 0–19)", "heldout": "held out (seeds 1000–1039)"}
    for name, label in labels.items():
        s = h[name]["summary"]
        out.append(
            (
                page,
                f"| {label} | {s['problems']} | **{s['solved']}** | "
                f"{s['max_synth_stationarity_residual']:.1e} | {s['min_synth_feasibility']:.2f} | "
                f"{s['max_selection_residual']:.1e} | {s['min_f1']:.3f} | {s['f1_below_1']} | "
                f"{s['svc_kkt_violated']} | {s['svc_not_converged']} | {s['svc_dual_not_unique']} | "
                f"{s['max_svc_kkt_violation']:.1e} |",
            )
        )
        explained = s["f1_below_1"] - s["f1_below_1_unexplained"]
        out.append((page, f"{explained} of the {s['f1_below_1']} {label.split(' (')[0]} rows"))
    ablation = {"previous": "steps `0.003/C²`", "origin_derived": "derived steps"}
    for variant, steps in ablation.items():
        s = h["ablation"][variant]["summary"]
        out.append((page, f"(start around the origin, {steps}) | {s['solved']} of {s['problems']} |"))
    worst = max(r["svc_kkt_violation"] for r in svm)
    out.append((page, f"largest SVC KKT violation over the {len(svm)} rows is {worst:.1e}"))
    solved = sum(h[k]["summary"]["solved"] for k in labels)
    total = sum(h[k]["summary"]["problems"] for k in labels)
    out.append(("README.md", f"{solved} of {total} generated problems"))
    return out


_LAMBDA_LABELS = {
    "fashion_mnist_small": "`fashion_mnist_small` (the demo's)",
    "digits_near_kkt": "digits MLP near a KKT point (held out)",
    "digits_mlp": "`digits_mlp` (held out)",
    "fashion_mnist_convnet": "`fashion_mnist_convnet` (held out, seed 0 only)",
}


def _lambda_rows(files: tuple[str, ...], variants: tuple[str, ...]) -> list[str]:
    """One table row per model: each variant's mean cosine over the seeds, and every seed."""
    out = []
    for name in files:
        if not (RESULTS / name).is_file():
            continue
        rows = {(r["model"], r["variant"]): r for r in load(name)["rows"]}
        for model in dict.fromkeys(m for m, _ in rows):
            cells = []
            for v in variants:
                r = rows.get((model, v))
                if r is None:
                    cells.append("—")
                elif len(r["cosine"]) == 1:
                    cells.append(f"{r['cosine'][0]:.3f}")
                else:
                    mean = statistics.mean(r["cosine"])
                    cells.append(f"{mean:.3f} ({' / '.join(f'{c:.3f}' for c in r['cosine'])})")
            out.append(f"| {_LAMBDA_LABELS[model]} | " + " | ".join(cells) + " |")
    return out


def lambda_n_rows() -> list[str]:
    """docs/defaults.md's table of the last-layer cosine against N (lambda_solve_last_n.json)."""
    if not (RESULTS / "lambda_solve_last_n.json").is_file():
        return []
    rows = load("lambda_solve_last_n.json")["rows"]
    sizes = sorted({r["n_per_class"] for r in rows})
    labels = {"global": "global cosine (default)", "global_solve1": "+ exact λ every step"}
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        for variant, label in labels.items():
            got = {
                r["n_per_class"]: r["cosine"][0]
                for r in rows
                if r["model"] == model and r["variant"] == variant
            }
            cells = " | ".join(f"{got[k]:.3f}" if k in got else "—" for k in sizes)
            out.append(f"| {_LAMBDA_LABELS[model]}, {label} | {cells} |")
    recipe = {r["n_per_class"]: r["cosine"][0] for r in load("lambda_solve_last_n_cosine600.json")["rows"]}
    four = {r["model"]: r for r in load("lambda_solve_last_cosine600.json")["rows"]}
    recipe[10] = four["fashion_mnist_small"]["cosine"][0]  # seed 0 of the four-seed run
    cells = " | ".join(f"{recipe[k]:.3f}" for k in sizes)
    label = 'the audit recipe (exact λ, 600 steps, `lr_schedule="cosine"`)'
    out.append(f"| {_LAMBDA_LABELS['fashion_mnist_small']}, {label} | {cells} |")
    seconds = {r["n_per_class"]: r["seconds"][0] for r in load("lambda_solve_last_n_cosine600.json")["rows"]}
    out.append(f"to {recipe[100]:.3f} at N = 1,000 ({seconds[100]:,.0f} s, one thread")
    return out


def lambda_cosine_rows() -> list[tuple[str, str]]:
    """docs/defaults.md's table of the step-size schedule (lambda_solve_last*_cosine*.json)."""
    runs = {
        ("last", "global_solve1"): "lambda_solve_last.json",
        ("last", "global_solve1_cosine"): "lambda_solve_last_cosine.json",
        ("last", "global_solve1_cosine_600"): "lambda_solve_last_cosine600.json",
        ("convnet", "global_solve1"): "lambda_solve_convnet_last.json",
        ("convnet", "global_solve1_cosine_600"): "lambda_solve_convnet_last_cosine600.json",
    }
    got = {}
    for (_, variant), name in runs.items():
        for r in load(name)["rows"]:
            if r["variant"] == variant:
                got[(r["model"], variant)] = r["cosine"]
    variants = ("global_solve1", "global_solve1_cosine", "global_solve1_cosine_600")
    out = []
    for model in ("fashion_mnist_small", "digits_near_kkt", "digits_mlp", "fashion_mnist_convnet"):
        cells = []
        for v in variants:
            c = got.get((model, v))
            if c is None:
                cells.append("—")
            elif len(c) == 1:
                cells.append(f"{c[0]:.3f}")
            else:
                cells.append(f"{statistics.mean(c):.3f} (" + " / ".join(f"{x:.3f}" for x in c) + ")")
        out.append(("docs/defaults.md", f"| {_LAMBDA_LABELS[model]} | " + " | ".join(cells) + " |"))
    return out


def lambda_solve_claims() -> list[tuple[str, str]]:
    """docs/defaults.md's tables of the default distance and the exact λ step (lambda_solve*.json)."""
    page = "docs/defaults.md"
    default_scope = ("per_tensor", "global", "global_solve10", "global_solve10_noaug", "global_solve1_noaug")
    last_scope = ("per_tensor", "global", "global_solve10", "global_solve1", "global_solve1_noaug")
    out = [
        (page, t)
        for t in _lambda_rows(("lambda_solve_small.json", "lambda_solve_convnet.json"), default_scope)
    ]
    out += [
        (page, t)
        for t in _lambda_rows(("lambda_solve_last.json", "lambda_solve_convnet_last.json"), last_scope)
    ]
    out += [(page, t) for t in lambda_n_rows()]
    big = [r for r in load("lambda_solve_last_n.json")["rows"] if r["variant"] == "global"]
    big = max(big, key=lambda r: r["n_per_class"])
    out.append((page, f"gives {big['refit_cosine'][0]:.3f} where its own λ give {big['cosine'][0]:.3f}"))
    n_rows = load("lambda_solve_last_n.json")["rows"]
    solved = {r["model"]: r for r in n_rows if r["variant"] == "global_solve1" and r["n_per_class"] == 100}[
        "fashion_mnist_small"
    ]
    plain = {r["model"]: r for r in n_rows if r["variant"] == "global" and r["n_per_class"] == 100}
    out.append(
        (
            page,
            f"The exact step at N = 1,000 took {solved['seconds'][0]:.0f} s against "
            f"{plain['fashion_mnist_small']['seconds'][0]:.0f} s without it",
        )
    )
    gains = [
        a["cosine"][0] - b["cosine"][0]
        for a in n_rows
        for b in n_rows
        if a["model"] == b["model"] == "digits_mlp"
        and a["n_per_class"] == b["n_per_class"]
        and (a["variant"], b["variant"]) == ("global_solve1", "global")
    ]
    out.append((page, f"the exact step by {min(gains):.2f} to {max(gains):.2f} at\nevery N"))
    qr = {r["n"]: r for r in load("nnls_qr_time.json")["rows"]}[1000]
    out.append(
        (
            page,
            f"{qr['median_seconds']['nnls_qr']:.1f} s\nagainst {qr['median_seconds']['nnls_full']:.1f} s "
            f"on the full `{qr['p']:,} × 1,000` problem, λ equal to "
            f"{qr['max_abs_lambda_difference']:.0e}",
        )
    )
    default_n = load("lambda_solve_default_n.json")["rows"]
    for variant, label in (
        ("global", "global cosine (default)"),
        ("global_solve10", "+ exact λ every 10 steps"),
    ):
        got = {r["n_per_class"]: r["cosine"][0] for r in default_n if r["variant"] == variant}
        out.append((page, f"| {label} | " + " | ".join(f"{got[k]:.3f}" for k in sorted(got)) + " |"))
    out += lambda_cosine_rows()
    n300 = load("lambda_solve_last_n300.json")["rows"][0]["cosine"]
    cells = " / ".join(f"{c:.3f}" for c in n300)
    out.append((page, f"{statistics.mean(n300):.3f} on average ({cells})"))
    rows = {(r["model"], r["variant"]): r for r in load("lambda_solve_small.json")["rows"]}
    demo = {v: statistics.mean(r["cosine"]) for (m, v), r in rows.items() if m == "fashion_mnist_small"}
    last = {(r["model"], r["variant"]): r for r in load("lambda_solve_last_cosine600.json")["rows"]}
    demo_last = statistics.mean(last[("fashion_mnist_small", "global_solve1_cosine_600")]["cosine"])
    out.append(
        (
            "README.md",
            f"| {demo['global']:.3f} / {demo_last:.3f} "
            f"({demo['per_tensor']:.3f} with the per-tensor cosine, the default before) |",
        )
    )
    return out


def near_kkt_claims() -> list[tuple[str, str]]:
    """docs/residuals.md's "On a model near a KKT point" against near_kkt_dsv.json."""
    page = "docs/residuals.md"
    d = load("near_kkt_dsv.json")
    rows = {r["model"]: r for r in d["rows"]}
    out = []
    for key, label in (
        ("near_kkt", "near a KKT point (full batch, wd 1e-3)"),
        ("reference", "reference `digits_mlp`"),
    ):
        r = rows[key]
        out.append(
            (
                page,
                f"| {label} | {_cos(r['readiness_cosine'])} | {_cos(r['selection_cosine'])} | "
                f"{_cos(r['dsv_noise_cosine_median'])} | {_cos(r['dsv_real_cosine_median'])} |",
            )
        )
    var = {(v["n_per_class"], v["per_layer"]): v for v in d["near_kkt_variants"]}
    for n, label in ((10, "100 (10 per class)"), (50, "500 (50 per class)")):
        per_tensor, glob = var[(n, True)], var[(n, False)]
        cells = [per_tensor["cosine_median"], glob["cosine_median"], glob["refit_cosine_median"]]
        out.append((page, f"| {label} | " + " | ".join(_cos(c) for c in cells) + " |"))
    out.append((page, f"**{_cos(var[(50, False)]['cosine_median'])} at 500**"))
    return out


def _accuracy_cell(r: dict, p_value: bool = True) -> str:
    """``mean ± std | n |`` of a distillation row, with its paired difference to ``random``
    (``random_soft`` for a soft-label row)."""
    cell = f"{100 * r['mean']:.1f} ± {100 * r['std']:.1f} | {r['n']} |"
    vs = r.get("vs_random", r.get("vs_random_soft"))
    if vs is not None:
        diff = f"{100 * vs['mean_difference']:+.1f}".replace("-", "−")
        cell += f" {diff}" + (f" (p = {vs['paired_t_pvalue']:.2f}) |" if p_value else " |")
    return cell


def distill_rows_claims() -> list[tuple[str, str]]:
    """docs/distill.md's extra 1-per-class rows against distillation_ipc1_rows.json."""
    page = "docs/distill.md"
    rows = load("distillation_ipc1_rows.json")["table"]["1"]
    out = []
    for key in ("random", "dsv_kshot", "dsv_kshot_global", "dsv_kshot_paper", "coreset", "dsv_0shot_global"):
        out.append((page, _accuracy_cell(rows[key])))
    grid = {
        **load("distillation_ipc1_3x3.json")["table"]["1"],
        **load("distillation_ipc1_3x3_rows.json")["table"]["1"],
    }
    for key in ("random", "dsv_kshot", "dsv_kshot_paper", "coreset", "dsv_0shot"):
        out.append((page, f"| 1 | `{key}` | {_accuracy_cell(grid[key])}"))
    for key, r in load("distillation_ipc10_3x3.json")["table"]["10"].items():
        out.append((page, f"| 10 | `{key}` | {_accuracy_cell(r)}"))
    audit = load("distillation_ipc1_audit.json")["table"]["1"]
    for key in ("random", "dsv_kshot_audit", "dsv_0shot_audit"):
        out.append((page, f"| `{key}` | {_accuracy_cell(audit[key], p_value=key.startswith('dsv_k'))}"))
    return out


# docs/distill.md's second grid: (results file, images per class, row, label in the table)
MORE_GRID = (
    ("distillation_ipc1_prior_3x3", "1", "dsv_0shot_prior", " (`generate.sample`, 1,000 steps)"),
    ("distillation_ipc1_other_3x3", "1", "dsv_0shot_other", " (from scikit-learn digits)"),
    ("distillation_ipc10_soft", "10", "random", ""),
    ("distillation_ipc10_soft", "10", "dsv_kshot", ""),
    ("distillation_ipc10_soft", "10", "random_soft", ""),
    ("distillation_ipc10_soft", "10", "dsv_kshot_soft", ""),
    ("distillation_ipc50", "50", "random", ""),
    ("distillation_ipc50", "50", "dsv_kshot", ""),
)


def distill_more_claims() -> list[tuple[str, str]]:
    """docs/distill.md's 0-shot starts, soft labels at 10, 50 per class and the ceiling."""
    page = "docs/distill.md"
    out = []
    for name, ipc, key, label in MORE_GRID:
        r = load(f"{name}.json")["table"][ipc][key]
        out.append((page, f"| {ipc} | `{key}`{label} | {_accuracy_cell(r)}"))
    ceiling = load("distill_ceiling.json")
    out.append(
        (
            page,
            f"| all {ceiling['train_images']:,} | the same student, {ceiling['protocol']['epochs']} epochs | "
            f"{100 * ceiling['mean']:.1f} | {len(ceiling['accuracies'])} | |",
        )
    )
    out.append((page, f"{ceiling['seconds']:,.0f} s on one thread"))
    grid = [
        load("distillation_ipc1_3x3.json")["table"]["1"],
        load("distillation_ipc10_3x3.json")["table"]["10"],
        load("distillation_ipc50.json")["table"]["50"],
    ]
    cells = [" / ".join(f"{100 * g[key]['mean']:.1f}" for g in grid) for key in ("random", "dsv_kshot")]
    out.append(("README.md", f"| {cells[0]} vs {cells[1]} % (`docs/distill.md`) |"))
    return out


def kronecker_claims() -> list[tuple[str, str]]:
    """docs/selection.md's Kronecker-sketch table (select_fmnist_kronecker.json, sketch_time.json)."""
    page = "docs/selection.md"
    k, t = load("select_fmnist_kronecker.json"), load("sketch_time.json")
    return [
        (page, f"| {t['count_over_epoch']:.2f}× | **{t['kronecker_over_epoch']:.2f}×** |"),
        (page, f"| {k['cpu_ratio_to_epoch']:.2f}× (CPU time, one thread) |"),
        (
            page,
            f"{k['solver']['rounds']} rounds (the cap), not converged, "
            f"sketch residual {k['solver']['residual']:.3f}",
        ),
        (
            page,
            f"| {k['stationarity']['cosine']:.3f} (`g_norm_ratio` {k['stationarity']['g_norm_ratio']:.0f}) |",
        ),
        (page, f"{k['solve_seconds']:,.0f} s of the {k['selection_seconds']:,.0f} s wall time"),
    ]


_SELECT_SCOPE_RUNS = ("select_fmnist_free_k2048", "select_fmnist_free", "select_fmnist")


def fig2_rows(recipe: str = "default") -> list[str]:
    """docs/defaults.md's Fig 2a/2b tables from fig2_default.json / fig2_audit.json."""
    rows = load(f"fig2_{recipe}.json")["rows"]
    out = []
    for name in ("fashion_mnist_small", "fashion_mnist_convnet"):
        rs = [r for r in rows if r["model"] == name]
        ent = " / ".join(f"{r['entropy_start']:.2f} → {r['entropy_end']:.2f}" for r in rs)
        cos = " / ".join(f"{r['cosine']:.3f}" for r in rs)
        pea = " / ".join(f"{r['pearson']:+.2f}" for r in rs).replace("-", "−")
        spe = " / ".join(f"{r['spearman']:+.2f}" for r in rs).replace("-", "−")
        out.append(f"| `{name}` | {ent} | {cos} | {pea} | {spe} |")
    return out


def generation_scope_claims() -> list[tuple[str, str]]:
    """docs/generate.md's scope table from generation_scope.json."""
    d = load("generation_scope.json")
    s = d["summary"]

    def rate(scope, seed):
        return next(r for r in d["rows"] if r["scope"] == scope and r["seed"] == seed)["judge_rate"]

    return [
        (
            "docs/generate.md",
            f"the default here) | {rate('all', 2):.2f} / {rate('all', 3):.2f} | "
            f"**{s['all']['judge_rate']:.2f}** | {s['all']['teacher_rate']:.2f} |",
        ),
        (
            "docs/generate.md",
            f'(`param_names="free"`) | {rate("free", 2):.2f} / {rate("free", 3):.2f} | '
            f"{s['free']['judge_rate']:.2f} | {s['free']['teacher_rate']:.2f} |",
        ),
    ]


def select_scope_table() -> list[str]:
    """docs/defaults.md's selection table: the default scope at two sketch sizes, every parameter."""
    a, b, c = (load(f"{n}.json") for n in _SELECT_SCOPE_RUNS)
    all_cos = [r["stationarity_all_parameters"]["cosine"] for r in (a, b)] + [c["stationarity"]["cosine"]]
    return [
        "| what | default scope, sketch 2,048 | default scope, sketch 4,096 | every parameter, sketch 2,048 "
        "(`select_fmnist.json`, an earlier commit) |",
        "|---|---|---|---|",
        "| one training epoch, same run | "
        + " | ".join(f"{r['epoch_seconds']:.0f} s" for r in (a, b, c))
        + " |",
        "| selection over all 60,000 (of which per-sample gradients) | "
        + " | ".join(f"{r['selection_seconds']:.0f} s ({r['gradient_seconds']:.0f} s)" for r in (a, b, c))
        + " |",
        "| ratio to one epoch, wall (CPU time) | "
        + " | ".join(f"**{r['ratio_to_epoch']:.2f}×** ({r['cpu_ratio_to_epoch']:.2f}×)" for r in (a, b))
        + f" | {c['ratio_to_epoch']:.2f}× (not recorded) |",
        "| exact stationarity cosine in the run's scope | "
        + " | ".join(f"{r['stationarity']['cosine']:.3f}" for r in (a, b, c))
        + " |",
        "| the same λ, exact cosine over every parameter | " + " | ".join(f"{v:.3f}" for v in all_cos) + " |",
        "| samples with λ > 0 | " + " | ".join(f"{r['n_support']:,}" for r in (a, b, c)) + " |",
    ]


def select_scope_claims() -> list[tuple[str, str]]:
    a, b, c = (load(f"{n}.json") for n in _SELECT_SCOPE_RUNS)
    inv = load("invariance.json")
    free = [r["stationarity"]["cosine"] for r in (a, b)]
    every = [r["stationarity_all_parameters"]["cosine"] for r in (a, b)]
    page = "docs/defaults.md"
    out = [(page, row) for row in select_scope_table()]
    out += [
        (
            page,
            f"takes {a['ratio_to_epoch']:.2f}× an epoch with a 2,048\nsketch and "
            f"{b['ratio_to_epoch']:.2f}× with 4,096",
        ),
        (
            page,
            f"gradients take {a['gradient_seconds']:.0f} s, against {c['gradient_seconds']:.0f} s over every",
        ),
        (page, f"({free[0]:.3f} and {free[1]:.3f})"),
        (page, f"reach {every[0]:.3f} and {every[1]:.3f}"),
        (
            page,
            f"the {c['stationarity']['cosine']:.3f} of the all-parameter selection, whose cosine is "
            f"capped at {inv['max_cosine_all_parameters']:.3f}",
        ),
        (
            "docs/selection.md",
            f"{a['ratio_to_epoch']:.2f}× an epoch with a 2,048 sketch, with an exact cosine of "
            f"{every[0]:.3f} over every parameter ({free[0]:.3f}\nin the free scope)",
        ),
    ]
    ent = [r["entropy"]["support_lambda_gt_0"] for r in (a, b)]
    pearson = [r["per_class"]["pearson"] for r in (a, b)]
    spearman = [r["per_class"]["spearman"] for r in (a, b)]
    page = "docs/selection.md"
    out += [
        (page, f"Its mean entropy is {ent[0]:.3f} with a 2,048 sketch\nand {ent[1]:.3f} with 4,096"),
        (page, f"Pearson {pearson[0]:+.3f} with\n2,048 and {pearson[1]:+.3f} with 4,096".replace("-", "−")),
        (page, f"(Spearman {spearman[0]:+.3f} and {spearman[1]:+.3f})".replace("-", "−").replace("+", "")),
    ]
    out.append(
        (
            "README.md",
            f"default scope, exact stationarity cosine {every[0]:.3f} over every parameter | "
            f"{a['ratio_to_epoch']:.2f}× ({a['selection_seconds']:.0f} s / {a['epoch_seconds']:.0f} s) |",
        )
    )
    return out


def scope_claims() -> list[tuple[str, str]]:
    """docs/defaults.md's default-scope section and README's rows against step_time_default*.json
    and select_fmnist_free*.json."""
    page = "docs/defaults.md"
    d = load("step_time_default.json")["median_seconds"]
    c = load("step_time_default_cpu.json")["median_seconds"]
    out = [
        (
            page,
            f"| `{p}` | {d['ratio_' + p + '_default']:.2f}× | {d['ratio_' + p]:.2f}× | "
            f"{c['ratio_' + p + '_default']:.2f}× | {c['ratio_' + p]:.2f}× |",
        )
        for p in ("default", "paper_eq9", "paper_alg1")
    ]
    out.append(
        (page, f"The training step took {d['train_step_s']:.3f} s (2 threads) and {c['train_step_s']:.3f} s")
    )
    out += [
        (
            "README.md",
            f'default scope (`param_names="free"`) | {c["ratio_default_default"]:.2f}× (median of 11, CPU '
            f"time of one thread; {d['ratio_default_default']:.2f}× wall, 2 threads) |",
        ),
        (
            "README.md",
            f"the paper's scope), same run | {c['ratio_default']:.2f}× (CPU time of one thread; "
            f"{d['ratio_default']:.2f}× wall, 2 threads) |",
        ),
    ]
    out += [(page, row) for row in fig2_rows()]
    out += [(page, row) for row in fig2_rows("audit")]
    audit = [r for r in load("fig2_audit.json")["rows"] if r["model"] == "fashion_mnist_small"]
    dips = " / ".join(f"{min(r['entropy_path']):.2f} → {r['entropy_end']:.2f}" for r in audit)
    out.append((page, f"then rises again in the second half ({dips}"))
    small = [r for r in load("fig2_default.json")["rows"] if r["model"] == "fashion_mnist_small"]
    pea = " / ".join(f"{r['pearson']:+.2f}" for r in small).replace("+", "").replace("-", "−")
    out.append(("README.md", f"| Pearson {pea} (paper, CIFAR-10 DSVs: +0.78) |"))
    conv = [r["cosine"] for r in load("fig2_default.json")["rows"] if r["model"] == "fashion_mnist_convnet"]
    lo, hi = min(conv), max(conv)
    out.append(("docs/report.md", f"synthesized with the defaults {lo:.2f} to {hi:.2f}"))
    out.append(("docs/defaults.md", f"({lo:.2f} to {hi:.2f} with the global cosine"))
    return out + select_scope_claims() + generation_scope_claims()


def blocked_qr_claims() -> list[tuple[str, str]]:
    """The blocked-QR solve against the iterative path (docs/selection.md)."""
    rows = {r["n"]: r for r in load("nnls_blocked_qr_time.json")["rows"]}
    a, b = rows[32], rows[64]
    qr = f"{a['blocked_qr']['seconds']:.1f} / {b['blocked_qr']['seconds']:.1f} s"
    it = f"{a['iterative']['seconds']:.1f} / {b['iterative']['seconds']:.1f} s"
    same = all(r["max_abs_lambda_difference"] == 0.0 for r in (a, b))
    return [
        ("docs/selection.md", f"solve in {qr}\ninstead of {it} on the iterative path"),
        ("docs/selection.md", "the same residual and the same λ" if same else "MISMATCH: λ differ"),
    ]


def kshot_screen_claims() -> list[tuple[str, str]]:
    """The k-shot screen's table cells (docs/distill.md): per-seed accuracies, mean, difference."""
    out = []
    for name, r in load("distill_kshot_screen.json")["rows"].items():
        cells = " / ".join(f"{100 * a:.1f}" for a in r["accuracies"])
        diff = "" if name == "random" else f" {100 * r['mean_difference_vs_random']:+.1f} |".replace("-", "−")
        out.append(("docs/distill.md", f"| {cells} | {100 * r['mean']:.1f} |{diff}"))
    return out


def mislabel_seed_claims() -> list[tuple[str, str]]:
    """The mislabel ROC-AUCs over three flip seeds (docs/explain.md)."""
    out = []
    for seed in (0, 1, 2):
        name = "evaluate_fmnist.json" if seed == 0 else f"evaluate_mislabels_seed{seed}.json"
        m = load(name)["mislabels"]
        keys = ("self_influence", "loss", "tracin", "tracin_checkpoints", "lambda_fit")
        cells = " | ".join(f"{m[k]['roc_auc']:.4f}" for k in keys)
        out.append(("docs/explain.md", f"| {seed} | {cells} |"))
    return out


def all_claims() -> list[tuple[str, str]]:
    return (
        claims()
        + blocked_qr_claims()
        + kshot_screen_claims()
        + mislabel_seed_claims()
        + scope_claims()
        + explain_claims()
        + selection_claims()
        + linear_grads_claims()
        + invariance_claims()
        + defaults_claims()
        + residuals_claims()
        + bounded_claims()
        + testing_claims()
        + readme_claims()
        + probe_claims()
        + select_rss_claims()
        + curves_claims()
        + distill_claims()
        + generate_claims()
        + svm_heldout_claims()
        + svm_torch_fit_claims()
        + self_influence_batch_claims()
        + near_kkt_claims()
        + lambda_solve_claims()
        + distill_rows_claims()
        + distill_more_claims()
        + kronecker_claims()
    )


def check() -> list[str]:
    errors = []
    pages: dict[str, str] = {}
    for page, text in all_claims():
        body = pages.setdefault(page, re.sub(r"\s*\n\s*", " ", (ROOT / page).read_text()))
        if re.sub(r"\s+", " ", text) not in body:
            errors.append(f"{page}: expected {text!r} (from benchmarks/results/)")
    return errors + svm_table_errors()


def main() -> int:
    if "--curves" in sys.argv:
        print("\n".join(curve_tables() + curve_variant_tables()))
        return 0
    errors = check()
    for e in errors:
        print("MISMATCH", e)
    n = len(all_claims())
    print(f"{n} claims + the SVM table checked, {len(errors)} mismatches")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
