"""The support-vector expansion and its captum classes, against literal float64 loops."""

import warnings

import pytest
import torch
from captum.attr import IntegratedGradients
from captum.influence._utils.common import KMostInfluentialResults
from conftest import TinyMLP, assert_same_snapshot, model_snapshot
from torch import nn

from kktexplain import DeepSupportVectors, DSVResult
from kktexplain.attr import Explanation, SupportExpansion, SupportVectorAttribution, SupportVectorInfluence
from kktexplain.kkt import cross_entropy


@pytest.fixture
def problem():
    torch.manual_seed(0)
    model = TinyMLP(d=3, h=5, c=3).double()
    x = torch.randn(12, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (12,))
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    xt = torch.randn(4, 3, dtype=torch.float64)
    return model, sel, x, y, xt


def brute_contributions(model, sel, xt, target, names=None):
    """-λ_j <grad L_j, grad f_c(x_i)> with one autograd call per (i, j), in float64."""
    params = dict(model.named_parameters())
    names = names or list(params)
    out = torch.zeros(len(xt), len(sel), dtype=torch.float64)
    for i in range(len(xt)):
        fc = model(xt[i : i + 1])[0, target[i]]
        gf = torch.autograd.grad(fc, [params[k] for k in names])
        for j in range(len(sel)):
            lj = cross_entropy(model(sel.inputs[j : j + 1]), sel.labels[j : j + 1]).sum()
            gl = torch.autograd.grad(lj, [params[k] for k in names])
            out[i, j] = -sel.lambdas[j] * sum((a * b).sum() for a, b in zip(gl, gf))
    return out


def brute_exact(model, xt, target, names=None, theta0=None):
    params = dict(model.named_parameters())
    names = names or list(params)
    vals = []
    for i in range(len(xt)):
        fc = model(xt[i : i + 1])[0, target[i]]
        gf = torch.autograd.grad(fc, [params[k] for k in names])
        d = [params[k] - (0 if theta0 is None else theta0[k]) for k in names]
        vals.append(sum((a * b).sum() for a, b in zip(d, gf)))
    return torch.stack(vals).detach()


def test_contributions_match_a_float64_loop(problem):
    model, sel, _, _, xt = problem
    target = torch.tensor([0, 1, 2, 1])
    svi = SupportVectorInfluence(model, sel)
    got = svi.influence((xt, target))
    want = brute_contributions(model, sel, xt, target)
    assert got.shape == (4, len(sel))
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    # captum's delta: the exact quantity minus the sum of the contributions
    delta = svi.convergence_delta((xt, target))
    torch.testing.assert_close(delta, brute_exact(model, xt, target) - want.sum(1), rtol=1e-9, atol=1e-10)


def test_scope_and_displacement_match_a_float64_loop(problem):
    model, sel, _, _, xt = problem
    names = ["fc2.weight", "fc2.bias"]
    theta0 = {k: torch.randn_like(v) for k, v in model.named_parameters()}
    target = torch.tensor([2, 2, 0, 1])
    svi = SupportVectorInfluence(model, sel, param_names=names, reference=theta0)
    torch.testing.assert_close(
        svi.influence((xt, target)), brute_contributions(model, sel, xt, target, names)
    )
    exact = svi.expansion.exact(xt).gather(1, target[:, None]).squeeze(1)
    torch.testing.assert_close(exact, brute_exact(model, xt, target, names, theta0))


def test_last_layer_quantity_is_the_logit(problem):
    """A model is linear in its last layer (with bias): <theta_L, grad_L f_c> = f_c exactly."""
    model, sel, _, _, xt = problem
    exp = SupportExpansion(model, sel, param_names=["fc2.weight", "fc2.bias"])
    torch.testing.assert_close(exp.exact(xt), model(xt).detach())


def test_homogeneous_network_quantity_is_degree_times_logit():
    """ReLU, no biases: f(a theta) = a^L f(theta), so <theta, grad f> = L f (Euler)."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 6, bias=False), nn.ReLU(), nn.Linear(6, 6, bias=False), nn.ReLU())
    model.append(nn.Linear(6, 3, bias=False))
    model = model.double()
    x = torch.randn(10, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (10,))
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    exp = SupportExpansion(model, sel)
    torch.testing.assert_close(exp.exact(x), 3 * model(x).detach())
    fid = exp.fidelity(x)
    assert fid.quantity_logit_pearson == pytest.approx(1.0, abs=1e-12)


def test_expanded_logits_equal_the_sum_of_contributions(problem):
    model, sel, _, _, xt = problem
    exp = SupportExpansion(model, sel)
    expanded = exp.expanded(xt)
    for c in range(3):
        t = torch.full((len(xt),), c)
        torch.testing.assert_close(expanded[:, c], exp.contributions(xt, t).sum(1))


def test_exact_stationarity_gives_zero_residual_and_full_agreement():
    """At a stationary point of sum λ_j L_j + ||theta_L||^2 / 2 the last layer is exactly
    -sum λ_j grad L_j, so the expansion has no residual and reproduces the model."""
    torch.manual_seed(2)
    model = TinyMLP(d=3, h=4, c=3).double()
    x = torch.randn(8, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (8,))
    lam = torch.rand(8, dtype=torch.float64) + 0.5
    last = [model.fc2.weight, model.fc2.bias]
    opt = torch.optim.LBFGS(last, lr=1, max_iter=500, tolerance_grad=1e-14, tolerance_change=1e-16)

    def closure():
        opt.zero_grad()
        loss = (lam * cross_entropy(model(x), y)).sum() + sum(p.pow(2).sum() for p in last) / 2
        loss.backward()
        return loss

    opt.step(closure)
    model.zero_grad(set_to_none=True)
    base = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    settings = {"param_names": ["fc2.weight", "fc2.bias"], "num_classes": 3}
    support = DSVResult(x, y, lam, base.kkt, {}, torch.ones(8, dtype=torch.bool), settings)
    svi = SupportVectorInfluence(model, support)
    xt = torch.randn(6, 3, dtype=torch.float64)
    assert svi.convergence_delta(xt).abs().max() < 1e-6
    assert svi.expansion.fidelity(xt).argmax_agreement == 1.0
    assert svi.expansion.fidelity(xt).relative_residual < 1e-6


def test_influence_conventions(problem):
    model, sel, x, y, xt = problem
    svi = SupportVectorInfluence(model, sel)
    full = svi.influence(xt)  # tensor in: targets are the model's predictions
    pred = model(xt).argmax(1)
    torch.testing.assert_close(full, svi.influence((xt, pred)))
    top = svi.influence((xt, pred), k=3)
    assert isinstance(top, KMostInfluentialResults)
    assert top.indices.shape == top.influence_scores.shape == (4, 3)
    torch.testing.assert_close(top.influence_scores, full.gather(1, top.indices))
    assert (top.influence_scores[:, :-1] >= top.influence_scores[:, 1:]).all()
    opp = svi.influence((xt, pred), k=3, proponents=False)
    assert (opp.influence_scores[:, :-1] <= opp.influence_scores[:, 1:]).all()
    torch.testing.assert_close(opp.influence_scores[:, 0], full.min(1).values)
    # self-influence: λ_j ||grad L_j||^2, zero outside the support
    si = svi.self_influence()
    params = list(model.parameters())
    for j in range(len(sel)):
        g = torch.autograd.grad(cross_entropy(model(x[j : j + 1]), y[j : j + 1]).sum(), params)
        assert si[j].item() == pytest.approx(sel.lambdas[j].item() * sum(t.pow(2).sum().item() for t in g))
    with pytest.raises(ValueError, match="inputs"):
        svi.self_influence((x, y))
    # k as captum's TracInCP takes it: 0 gives empty results, a k above the rows is lowered
    empty = svi.influence(xt, k=0)
    assert empty.indices.shape == (len(xt), 0) and empty.influence_scores.shape == (len(xt), 0)
    assert svi.influence(xt, k=len(sel) + 1).indices.shape == (len(xt), len(sel))
    with pytest.raises(ValueError, match="k must"):
        svi.influence(xt, k=-1)
    with pytest.raises(TypeError, match="support"):
        SupportVectorInfluence(model, (x, y))
    with pytest.raises(ValueError, match="param_names"):
        SupportVectorInfluence(model, sel, param_names=["nope"])
    with pytest.raises(
        ValueError, match=r"labels \(the y of an \(x, y\) batch\) must give one class per input"
    ):
        svi.influence((xt, torch.tensor([0, 1])))
    with pytest.raises(TypeError, match="float32"):
        SupportVectorInfluence(TinyMLP().half(), sel)


def test_sketched_cache_approximates_exact_contributions(problem):
    model, sel, _, _, xt = problem
    exact = SupportVectorInfluence(model, sel, projection_dim=None).influence(xt)
    lossless = SupportVectorInfluence(model, sel, projection_dim=10_000).influence(xt)  # K >= P: exact
    torch.testing.assert_close(lossless, exact)
    sketched = SupportVectorInfluence(model, sel, projection_dim=8, seed=3)
    assert sketched.expansion.cache["grads"].shape[1] == 8
    assert not torch.allclose(sketched.influence(xt), exact)
    # the sketch's error goes to the delta; the exact quantity is untouched
    d = sketched.convergence_delta(xt) + sketched.influence(xt).sum(1)
    torch.testing.assert_close(d, SupportVectorInfluence(model, sel).convergence_delta(xt) + exact.sum(1))


@pytest.mark.parametrize("target", [1, [0, 1, 2, 0], torch.tensor([2, 1, 0, 0]), None])
def test_attribution_conventions(problem, target):
    model, sel, _, _, xt = problem
    sva = SupportVectorAttribution(model, sel)
    a = sva.attribute(xt, target=target)
    assert isinstance(a, torch.Tensor) and a.shape == xt.shape
    (b,) = sva.attribute((xt,), target=target)
    torch.testing.assert_close(a, b)
    a2, delta = sva.attribute(xt, target=target, return_convergence_delta=True, n_steps=64)
    assert delta.shape == (4,)
    # IG's completeness: attributions sum to F(x) - F(0) up to the delta
    t = sva.expansion.logits(xt).argmax(1) if target is None else torch.as_tensor(target).expand(4)
    fx = sva.expansion.expanded(xt).gather(1, t[:, None]).squeeze(1)
    f0 = sva.expansion.expanded(torch.zeros_like(xt)).gather(1, t[:, None]).squeeze(1)
    torch.testing.assert_close(a2.sum(1) - delta, fx - f0, rtol=1e-6, atol=1e-8)
    assert delta.abs().max() < 1e-2 * (fx - f0).abs().max()


def test_attribution_of_one_support_vector_is_ig_of_its_term(problem):
    """The map for support vector j is captum's IG of x -> -λ_j <grad L_j, grad f_c(x)>."""
    model, sel, _, _, xt = problem
    j = int(sel.lambdas.argmax())
    params = dict(model.named_parameters())
    lj = cross_entropy(model(sel.inputs[j : j + 1]), sel.labels[j : j + 1]).sum()
    gl = [g.detach() for g in torch.autograd.grad(lj, list(params.values()))]

    def term(x):
        out = []
        for i in range(len(x)):
            gf = torch.autograd.grad(model(x[i : i + 1])[0, 1], list(params.values()), create_graph=True)
            out.append(-sel.lambdas[j] * sum((a * b).sum() for a, b in zip(gl, gf)))
        return torch.stack(out)

    want = IntegratedGradients(term).attribute(xt, n_steps=8)
    got = SupportVectorAttribution(model, sel).attribute(xt, target=1, support_index=j, n_steps=8)
    torch.testing.assert_close(got, want)
    twice = SupportVectorAttribution(model, sel).attribute(xt, target=1, support_index=[j, j], n_steps=8)
    torch.testing.assert_close(twice, want)  # a set of rows: a repeated row counts once
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # captum warned that it set requires_grad on the inputs
        sal = SupportVectorAttribution(model, sel, method="saliency").attribute(xt, target=1, support_index=j)
    assert sal.shape == xt.shape and not xt.requires_grad
    with pytest.raises(ValueError, match="convergence_delta"):
        SupportVectorAttribution(model, sel, method="saliency").attribute(xt, return_convergence_delta=True)
    with pytest.raises(ValueError, match="support_index"):
        SupportVectorAttribution(model, sel).attribute(xt, support_index=len(sel))


def test_model_left_unchanged(problem):
    model, sel, x, y, xt = problem
    model.train()
    model.fc1.weight.requires_grad_(False)
    model(xt).sum().backward()
    model.fc2.register_forward_hook(lambda *a: None)
    before = model_snapshot(model)
    svi = SupportVectorInfluence(model, sel)
    svi.influence(xt, k=2)
    svi.self_influence()
    SupportVectorAttribution(model, sel).attribute(xt, target=0, return_convergence_delta=True)
    sel.explain(model, xt[:1], k=2, n_steps=4)
    assert_same_snapshot(before, model_snapshot(model))


def test_explain(problem, tmp_path):
    model, sel, _, _, xt = problem
    e = sel.explain(model, xt[0], k=3, n_steps=4, class_names=["a", "b", "c"])
    assert isinstance(e, Explanation) and len(e) == 1
    assert e.supporting_indices.shape == e.opposing_indices.shape == (1, 3)
    assert e.supporting_inputs.shape == (1, 3, 3)
    assert e.supporting_maps.shape == (1, 3, 3)
    full = SupportVectorInfluence(model, sel).influence(xt[:1])
    torch.testing.assert_close(e.supporting_contributions[0], full[0].sort(descending=True).values[:3])
    torch.testing.assert_close(e.opposing_contributions[0], full[0].sort().values[:3])
    torch.testing.assert_close(e.residual, e.exact - full.sum(1))
    assert int(e.prediction[0]) == int(model(xt[:1]).argmax())
    html = e.to_html()
    assert "plotly" in html.lower() and "<div" in html
    fig = e.figure()  # flat features: the feature attribution and the contributions, full width
    assert [t.type for t in fig.data] == ["bar", "bar"]
    torch.testing.assert_close(torch.tensor(fig.data[0].y), e.feature_map[0].cpu(), check_dtype=False)
    shown = sum(e.shown())  # the contributions of each list's own sign
    assert 1 <= shown <= 6 and len(fig.data[1].y) == shown
    ax = e.plot()
    assert len(ax.patches) == shown
    with pytest.raises(ValueError, match="index"):
        e.plot(index=3)
    fig = e.plot_panel()  # flat features: bars, one per feature (an image would be a picture)
    inputs_ax, map_ax = fig.axes[0], fig.axes[max(*e.shown(), 1) + 1]  # a grid 3 x (columns + 1)
    assert len(inputs_ax.patches) == 3 and not inputs_ax.images
    heights = [p.get_height() for p in map_ax.patches]
    torch.testing.assert_close(
        torch.tensor(heights, dtype=torch.float32), e.feature_map[0].float(), rtol=1e-6, atol=1e-6
    )
    with pytest.raises(ValueError, match="inputs must have shape"):
        sel.explain(model, torch.randn(2, 5, dtype=torch.float64))


def test_explanation_html_titles_sit_over_their_tiles():
    """Titles of the image grid: row 1 input and map, row 2 supporting, row 3 opposing."""
    torch.manual_seed(0)
    from kktexplain.models import ConvNet

    model = ConvNet((1, 6, 6), 3, width=2, depth=1).double()
    x = torch.randn(9, 1, 6, 6, dtype=torch.float64)
    y = torch.arange(3).repeat(3)
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    e = sel.explain(model, x[0], k=3, maps="none")
    ann = {a.text: (a.x, a.y) for a in e.figure().layout.annotations if a.text}
    ns, no = e.shown(0)

    def titles(sign, rows, con, lab, count):  # sign, the row (no ids here), label, contribution
        return [
            f"{sign} #{int(rows[0, j])} class {int(lab[0, j])}: {float(con[0, j]):.2g}" for j in range(count)
        ]

    sup = titles("+", e.supporting_indices, e.supporting_contributions, e.supporting_labels, ns)
    opp = titles("-", e.opposing_indices, e.opposing_contributions, e.opposing_labels, no)
    assert set(ann) == {"input", "feature map", *sup, *opp}
    assert ann[sup[0]][0] == pytest.approx(ann["input"][0])  # first column
    assert ann[opp[0]][0] == pytest.approx(ann["input"][0])
    assert ann["input"][1] > ann[sup[0]][1] > ann[opp[0]][1]  # rows from the top
    assert len({ann[t][1] for t in sup}) == 1 and len({ann[t][1] for t in opp}) == 1


class _Scaled(nn.Module):
    """A model with an argument beyond its inputs."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x, scale):
        return self.fc(x) * scale


def test_explain_passes_additional_forward_args_and_names_them_when_missing():
    torch.manual_seed(0)
    model = _Scaled().double()
    x, y = torch.randn(12, 3, dtype=torch.float64), torch.arange(12) % 3
    sel = DeepSupportVectors(progress=False).attribute(
        model, candidates=x, labels=y, additional_forward_args=(2.0,)
    )
    e = sel.explain(model, x[:2], k=2, n_steps=4, additional_forward_args=(2.0,))
    torch.testing.assert_close(e.logits, model(x[:2], 2.0).detach().cpu())
    full = SupportVectorInfluence(model, sel, additional_forward_args=(2.0,)).influence((x[:2], e.target))
    torch.testing.assert_close(e.residual, e.exact - full.sum(1))
    assert e.feature_map.abs().sum() > 0 and e.supporting_maps.abs().sum() > 0
    with pytest.raises(TypeError, match="support_forward_args"):
        SupportVectorAttribution(model, sel).attribute(x[:2], target=0, additional_forward_args=(2.0,))
    with pytest.raises(TypeError, match="additional_forward_args="):
        sel.explain(model, x[:2])


def test_float32_inputs_of_a_float64_model(problem):
    model, sel, _, _, xt = problem  # a float64 model and support set
    x32 = xt.float()
    sva = SupportVectorAttribution(model, sel)
    a32, d32 = sva.attribute(x32, target=1, n_steps=8, return_convergence_delta=True)
    a64, d64 = sva.attribute(x32.double(), target=1, n_steps=8, return_convergence_delta=True)
    assert a32.dtype == torch.float32  # the inputs' own dtype, as captum's
    torch.testing.assert_close(a32, a64.float(), rtol=1e-5, atol=1e-6)
    svi = SupportVectorInfluence(model, sel)
    torch.testing.assert_close(
        svi.influence((x32, torch.ones(4, dtype=torch.long))),
        svi.influence((x32.double(), torch.ones(4, dtype=torch.long))),
    )
    e = sel.explain(model, x32[:1], k=2, n_steps=4)
    assert int(e.prediction[0]) == int(model(x32[:1].double()).argmax())


class _TwoInputs(nn.Module):
    """``f(x, z)``: ``z`` is a context tensor shared by every sample."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 3), nn.Linear(2, 3)

    def forward(self, x, z):
        return self.a(torch.tanh(x)) + self.b(z)


class _Bound(nn.Module):
    """The same function with ``z`` built in: the reference."""

    def __init__(self, inner, z):
        super().__init__()
        self.a, self.b, self.z = inner.a, inner.b, z

    def forward(self, x):
        return self.a(torch.tanh(x)) + self.b(self.z)


@pytest.mark.parametrize("z_shape", [(1, 2), (2,)])
def test_a_shared_tensor_argument_reaches_the_model_unrepeated(z_shape):
    """captum repeats tensor arguments along their first axis with the IG steps; a tensor shared
    by every sample must reach the model as given (found by a stress test: a size mismatch)."""
    torch.manual_seed(0)
    model = _TwoInputs().double()
    x, y = torch.randn(20, 4, dtype=torch.float64), torch.arange(20) % 3
    z = torch.randn(*z_shape, dtype=torch.float64)
    bound = _Bound(model, z)
    sel = DeepSupportVectors(progress=False).attribute(
        model, candidates=x, labels=y, additional_forward_args=(z,)
    )
    ref = DeepSupportVectors(progress=False).attribute(bound, candidates=x, labels=y)
    torch.testing.assert_close(sel.lambdas, ref.lambdas)
    for method in ("integrated_gradients", "saliency"):
        got = SupportVectorAttribution(model, sel, support_forward_args=(z,), method=method)
        want = SupportVectorAttribution(bound, ref, method=method)
        torch.testing.assert_close(
            got.attribute(x[:3], target=1, additional_forward_args=(z,)), want.attribute(x[:3], target=1)
        )
    e = sel.explain(model, x[:2], k=2, n_steps=8, additional_forward_args=(z,))
    e_ref = ref.explain(bound, x[:2], k=2, n_steps=8)
    torch.testing.assert_close(e.feature_map, e_ref.feature_map)
    torch.testing.assert_close(e.supporting_maps, e_ref.supporting_maps)
    # one value per sample is not supported: the message names the arguments
    with pytest.raises(ValueError, match="additional_forward_args"):
        DeepSupportVectors(progress=False).attribute(
            model, candidates=x, labels=y, additional_forward_args=(torch.randn(20, 2, dtype=torch.float64),)
        )


def test_explanations_show_only_contributions_of_their_lists_sign(problem):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model, sel, _, _, xt = problem
    e = sel.explain(model, xt[:2], k=len(sel), n_steps=2)  # every row in both ranked lists
    for i in range(2):
        ns, no = e.shown(i)
        contrib = SupportVectorInfluence(model, sel).influence((xt[i : i + 1], e.target[i : i + 1]))[0]
        assert ns == int((contrib > 0).sum()) and no == int((contrib < 0).sum())
        assert (e.supporting_contributions[i, :ns] > 0).all() and (e.opposing_contributions[i, :no] < 0).all()
        ax = e.plot(i)
        assert len(ax.patches) == ns + no  # were 2k bars, each row twice with both signs
        plt.close("all")
        bars = [t for t in e.figure(i).data if t.type == "bar" and t.name == "contribution"][0]
        assert len(bars.y) == ns + no and len(set(bars.x)) == ns + no


def test_explanation_numbers_vectors_by_the_selection_ids_and_draws_red_positive():
    """A selection over a subset carries ``indices`` (the samples' places in the data); the
    explanation's plots and HTML number support vectors by them, as the report's other
    sections do (they showed rows, so '#19' on one section was '38' on another). The HTML
    feature map draws positive red (plotly's 'RdBu' drew it blue)."""
    import matplotlib

    matplotlib.use("Agg")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(12, 4), torch.arange(12) % 3
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    sel.indices = torch.arange(12) * 2 + 100  # rows 0..11 are samples 100, 102, ...
    e = sel.explain(model, torch.randn(2, 4), k=2, maps="none")
    torch.testing.assert_close(e.support_ids, sel.indices)
    ns, _ = e.shown(0)
    shown = [f"#{100 + 2 * int(r)}" for r in e.supporting_indices[0, :ns]]
    bars = [t for t in e.figure(0).data if t.name == "contribution"][0]
    assert list(bars.x[:ns]) == shown
    labels = [t.get_text().split("\n")[0] for t in e.plot(0).get_xticklabels()]
    assert labels[:ns] == shown
    assert labels == list(bars.x)  # the same order in the figure and the HTML (opposing: most negative last)

    image_model = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    xi = torch.randn(6, 3, 4, 4)
    sel_i = DeepSupportVectors(progress=False).attribute(
        image_model, candidates=xi, labels=torch.arange(6) % 3
    )
    fig = sel_i.explain(image_model, xi[:1], k=1, maps="total").figure(0)
    heat = [t for t in fig.data if t.type == "heatmap" and t.zmid == 0][0]
    assert heat.colorscale[-1][1] == "rgb(103,0,31)"  # the top of the scale is red
    assert fig.data[0].type == "image"  # three channels: a picture, not their grey mean


def test_explain_refuses_inputs_whose_logits_overflow():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        model[0].weight.mul_(100.0)
    x, y = torch.randn(12, 4), torch.arange(12) % 3
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    huge = torch.cat([torch.randn(1, 4), torch.full((1, 4), 3e38)])  # finite, the logits are not
    with pytest.raises(ValueError, match=r"inputs rows \[1\] are finite but the model's logits"):
        sel.explain(model, huge, maps="none")


def test_feature_names_label_the_feature_maps_of_flat_inputs():
    import matplotlib

    matplotlib.use("Agg")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(12, 4), torch.arange(12) % 3
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    names = ["age", "dose", "weight", "height"]
    e = sel.explain(model, x[:1], maps="total", feature_names=names)
    assert e.feature_names == names
    bars = [t for t in e.figure(0).data if t.name == "feature attribution"][0]
    assert list(bars.x) == names
    panel = e.plot_panel(0)
    cols = max(*e.shown(0), 1) + 1  # the panel's grid: 3 rows of cols axes; the map is row 1, column 0
    assert [t.get_text() for t in panel.axes[cols].get_xticklabels()] == names
    with pytest.raises(ValueError, match="feature_names must be a list of 4 names"):
        sel.explain(model, x[:1], maps="none", feature_names=names[:3])
    image_model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    xi = torch.randn(6, 1, 4, 4)
    sel_i = DeepSupportVectors(progress=False).attribute(
        image_model, candidates=xi, labels=torch.arange(6) % 3
    )
    with pytest.raises(ValueError, match=r"feature_names name the features of flat inputs"):
        sel_i.explain(image_model, xi[:1], maps="none", feature_names=names)


def test_forward_args_made_under_inference_mode():
    """A tensor argument made under torch.inference_mode raised torch's "Inference tensors
    cannot be saved for backward" in selection and in explain."""
    torch.manual_seed(0)
    model = _Scaled()
    x, y = torch.randn(9, 3), torch.arange(9) % 3
    with torch.inference_mode():
        scale = torch.tensor(2.0)
    sel = DeepSupportVectors(progress=False).attribute(
        model, candidates=x, labels=y, additional_forward_args=(scale,)
    )
    e = sel.explain(model, x[:1], maps="total", additional_forward_args=(scale,))
    assert torch.isfinite(e.exact).all() and torch.isfinite(e.feature_map).all()
