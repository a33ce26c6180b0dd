"""The linear-SVM sanity check: DeepKKT selection recovers SVC's support set and duals."""

import numpy as np
import pytest
from sklearn.svm import SVC

from kktexplain.svm import SANITY_DATASETS, sanity_check


def test_svc_identity_the_comparison_relies_on():
    x, y = SANITY_DATASETS["two_moons"]()
    svc = SVC(kernel="linear", C=1.0).fit(x, y)
    np.testing.assert_allclose(svc.dual_coef_ @ svc.support_vectors_, svc.coef_, atol=1e-12)
    np.testing.assert_allclose(x @ svc.coef_.T + svc.intercept_, svc.decision_function(x)[:, None])
    assert (np.abs(svc.dual_coef_) <= 1.0 + 1e-12).all()


@pytest.mark.parametrize("name", ["two_moons", "iris_versicolor_vs_virginica", "wine_0_vs_1"])
@pytest.mark.parametrize("C", [0.1, 1.0, 10.0])
def test_selection_recovers_svc(name, C):
    x, y = SANITY_DATASETS[name]()
    r = sanity_check(x, y, C=C, n_synthetic=0)
    assert r.f1 >= 0.98 and r.pearson >= 0.98, r.to_dict()
    assert r.stationarity_residual < 1e-4
    assert r.svc_identity_error < 1e-12
    lam = r.selection.lambdas.numpy()
    assert lam.max() <= C + 1e-9


# breast cancer at C = 10 (30 features) failed with the previous Adam settings: every DSV left
# the margin and the residual was 1.0
@pytest.mark.parametrize("name, C", [("two_moons", 1.0), ("breast_cancer", 10.0)])
def test_synthesis_default_satisfies_stationarity_inside_the_margin(name, C):
    x, y = SANITY_DATASETS[name]()
    r = sanity_check(x, y, C=C)
    s = r.synthesis
    f = r.svc.decision_function(s.inputs.double().numpy())
    ys = 2 * s.labels.numpy() - 1
    active = ys * f < 1
    w = r.svc.coef_[0]
    literal = np.linalg.norm(
        w
        - sum(
            lam * yi * xi
            for lam, yi, xi, a in zip(s.lambdas.double().numpy(), ys, s.inputs.double().numpy(), active)
            if a
        )
    ) / np.linalg.norm(w)
    assert r.synth_stationarity_residual == pytest.approx(literal, abs=1e-9)
    assert r.synth_active_fraction >= 0.9 and r.synth_stationarity_residual < 0.01, r.to_dict()
    assert r.margin_deviation < 0 and r.synth_feasibility == 1.0


def test_synth_optimizer_is_validated():
    x, y = SANITY_DATASETS["two_moons"]()
    with pytest.raises(ValueError, match="synth_optimizer must be 'sgd' or 'adam'"):
        sanity_check(x, y, synth_optimizer="lbfgs")


def test_synthesis_reports_margin_and_torch_weights():
    x, y = SANITY_DATASETS["gaussian_blobs"]()
    r = sanity_check(x, y, C=1.0, n_synthetic=3, synth_steps=20)
    assert np.isfinite(r.margin_deviation) and r.synthesis.inputs.shape == (6, 2)
    t = sanity_check(x, y, C=1.0, weights="torch", n_synthetic=0)
    assert t.weights == "torch" and t.recall >= 0.9


def test_multiclass_is_rejected_clearly():
    from sklearn.datasets import load_iris

    bunch = load_iris()
    with pytest.raises(ValueError, match="one-vs-one"):
        sanity_check(bunch.data, bunch.target)
    with pytest.raises(ValueError, match="weights must be"):
        sanity_check(bunch.data[:100], bunch.target[:100], weights="liblinear")


def test_suite_runner_and_cli(tmp_path):
    import json

    from kktexplain.cli import main
    from kktexplain.svm import run_sanity_suite

    rows = run_sanity_suite([1.0], synth_steps=5, datasets=["iris_setosa_vs_versicolor"])
    assert rows[0]["dataset"] == "iris_setosa_vs_versicolor" and rows[0]["f1"] >= 0.98
    out = tmp_path / "rows.json"
    assert main(["sanity-check", "--json", str(out), "--C", "1", "--synth-steps", "2"]) == 0
    rows = json.loads(out.read_text())
    assert len(rows) == 7 and all(r["f1"] >= 0.98 and r["pearson"] >= 0.98 for r in rows)


def test_plot_svm_2d():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kktexplain.viz import plot_svm_2d

    x, y = SANITY_DATASETS["gaussian_blobs"]()
    r = sanity_check(x, y, C=1.0, n_synthetic=2, synth_steps=5)
    ax = plot_svm_2d(r)
    assert ax.get_legend() is not None and "F1=1.000" in ax.get_title()
    plt.close("all")
    wide = sanity_check(*SANITY_DATASETS["wine_0_vs_1"](), C=1.0, n_synthetic=0)
    with pytest.raises(ValueError, match="2-D inputs"):
        plot_svm_2d(wide)
