"""The evaluations' figures (matplotlib, written beside evaluation.json)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["evaluation_figures"]


def evaluation_figures(result: dict, out: Path) -> None:
    """The figures of an ``evaluation.json`` dict: ``mislabels.png``, ``removal.png`` and
    ``randomization.png``, for the parts it holds, written into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "mislabels" in result:
        fig, ax = plt.subplots(figsize=(7, 3.4))
        rows = {k: v for k, v in result["mislabels"].items() if "roc_auc" in v}
        ax.bar(list(rows), [v["roc_auc"] for v in rows.values()])
        ax.set_ylabel("ROC-AUC")
        ax.set_ylim(0.5, 1.0)
        ax.set_title("mislabel detection")
        ax.tick_params(axis="x", labelsize=7, labelrotation=20)
        fig.tight_layout()
        fig.savefig(out / "mislabels.png", dpi=110)
        plt.close(fig)
    if "removal" in result:
        fig, ax = plt.subplots(figsize=(4, 3))
        rows = result["removal"]["margin_drop"]
        ax.bar(list(rows), [v["mean"] for v in rows.values()], yerr=[v["sem"] for v in rows.values()])
        ax.set_ylabel("mean margin drop")
        ax.set_title(f"removing top-{result['removal']['k']} proponents")
        fig.tight_layout()
        fig.savefig(out / "removal.png", dpi=110)
        plt.close(fig)
    if isinstance(result.get("randomization"), list):
        fig, ax = plt.subplots(figsize=(5, 3))
        rows = result["randomization"]
        ax.plot([r["spearman"] for r in rows], "o-", label="support-vector maps")
        ax.plot([r["spearman_ig"] for r in rows], "s--", label="IG of the logit")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([r["layer"] for r in rows], rotation=45, fontsize=7)
        ax.set_ylabel("Spearman with original")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "randomization.png", dpi=110)
        plt.close(fig)
