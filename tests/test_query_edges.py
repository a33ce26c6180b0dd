"""The per-decision API on what a fourth stress test of unseen models tried: labels of shape
(n, 1), a prepared influence of another support set or model, tuple inputs, captum's inherited
API on a model left in train mode, backward hooks, meta and inference-mode tensors, input dtypes."""

import numpy as np
import pytest
import torch
from conftest import assert_same_snapshot, model_snapshot
from torch import nn

from kktexplain import DeepSupportVectors
from kktexplain.attr import SupportVectorAttribution, SupportVectorInfluence


def _mlp(seed=0, dropout=False):
    torch.manual_seed(seed)
    drop = [nn.Dropout(0.5)] if dropout else []
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), *drop, nn.Linear(6, 3))


@pytest.fixture
def setup():
    model = _mlp().eval()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(12, 4, generator=g), torch.arange(12) % 3
    sel = DeepSupportVectors(progress=False, param_names=None).attribute(model, candidates=x, labels=y)
    return model, x, y, sel


def test_labels_of_shape_n_by_1_are_class_indices_not_soft_labels(setup):
    model, x, _, sel = setup
    svi = SupportVectorInfluence(model, sel)
    q, c = x[:3], torch.tensor([0, 1, 2])
    want = svi.influence((q, c))
    assert torch.equal(svi.influence((q, c[:, None])), want)
    assert torch.equal(svi.convergence_delta((q, c[:, None])), svi.convergence_delta((q, c)))
    assert not torch.equal(svi.influence((q, torch.zeros(3, dtype=torch.long))), want)
    # rows of probabilities explain their arg-max class; a float column or other widths raise
    soft = torch.nn.functional.one_hot(c, 3).double() * 0.8 + 0.2 / 3
    assert torch.equal(svi.influence((q, soft)), want)
    with pytest.raises(TypeError, match=r"labels of an \(x, y\) batch .* shape \(3, 1\)"):
        svi.influence((q, c[:, None].double()))
    with pytest.raises(ValueError, match=r"labels of an \(x, y\) batch .* got shape \(3, 2\)"):
        svi.influence((q, torch.zeros(3, 2, dtype=torch.long)))
    with pytest.raises(TypeError, match=r"labels of an \(x, y\) batch must be class indices"):
        svi.influence((q, torch.tensor([0.0, 1.0, 2.0])))
    # numpy integers are ints, as in captum
    assert torch.equal(svi.influence((q, np.array([0, 1, 2]))), want)
    one = SupportVectorInfluence(model, sel).influence((q, torch.ones(3, dtype=torch.long)))
    sva = SupportVectorAttribution(model, sel)
    assert torch.equal(sva.attribute(q, target=np.int64(1)), sva.attribute(q, target=1))
    assert torch.equal(sva.attribute(q, target=np.array([0, 1, 2])), sva.attribute(q, target=[0, 1, 2]))
    assert one.shape == (3, 12)


def test_explain_refuses_an_influence_of_another_support_set_or_model(setup):
    model, x, y, sel = setup
    g = torch.Generator().manual_seed(5)
    other_x = torch.randn(12, 4, generator=g)
    other = DeepSupportVectors(progress=False, param_names=None).attribute(
        model, candidates=other_x, labels=y
    )
    with pytest.raises(ValueError, match="another support set"):
        sel.explain(model, x[:2], k=2, influence=SupportVectorInfluence(model, other))
    with pytest.raises(ValueError, match="another support set"):
        short = DeepSupportVectors(progress=False, param_names=None).attribute(
            model, candidates=x[:6], labels=y[:6]
        )
        sel.explain(model, x[:2], k=2, influence=SupportVectorInfluence(model, short))
    with pytest.raises(ValueError, match="another model"):
        sel.explain(_mlp(seed=3).eval(), x[:2], k=2, influence=SupportVectorInfluence(model, sel))
    with pytest.raises(TypeError, match="influence must be a SupportVectorInfluence"):
        sel.explain(model, x[:2], influence="cached")
    svi = SupportVectorInfluence(model, sel)
    e = sel.explain(model, x[:2], k=2, influence=svi)
    assert torch.equal(e.supporting_inputs, sel.inputs[e.supporting_indices])


def test_tuple_inputs_and_baselines_are_checked_like_a_tensor(setup):
    model, x, _, sel = setup
    sva = SupportVectorAttribution(model, sel)
    bad = x[:2].clone()
    bad[1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"inputs\[0\] holds NaN or inf values \(rows \[1\]\)"):
        sva.attribute((bad,), target=0)
    with pytest.raises(ValueError, match=r"inputs\[0\] must have shape \(n, 4\)"):
        sva.attribute((torch.randn(3, 5),), target=0)
    with pytest.raises(ValueError, match=r"inputs\[0\] must be a batch"):
        sva.attribute((x[0],), target=0)
    with pytest.raises(ValueError, match=r"inputs\[0\] is empty"):
        sva.attribute((x[:0],), target=0)
    with pytest.raises(ValueError, match=r"non-empty tuple"):
        sva.attribute((), target=0)
    with pytest.raises(ValueError, match="baselines holds NaN or inf"):
        sva.attribute(x[:2], target=0, baselines=torch.full((2, 4), float("nan")))
    with pytest.raises(ValueError, match=r"baselines\[0\] holds NaN or inf"):
        sva.attribute((x[:2],), target=0, baselines=(torch.full((2, 4), float("inf")),))
    (a,) = sva.attribute((x[:2],), target=0)
    assert torch.allclose(a, sva.attribute(x[:2], target=0))


def test_captum_api_inherited_by_the_attribution_runs_the_model_in_eval_mode():
    model = _mlp(dropout=True).train()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(12, 4, generator=g), torch.arange(12) % 3
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    sva = SupportVectorAttribution(model, sel)
    before = model_snapshot(model)
    a, delta = sva.attribute(x[:3], target=1, return_convergence_delta=True)
    again = sva.compute_convergence_delta(a, 0.0, x[:3], target=1)
    assert torch.allclose(again.to(delta.dtype), delta, atol=1e-6)
    assert torch.equal(sva.forward_func(x[:3]), sva.forward_func(x[:3]))  # no dropout noise
    assert_same_snapshot(before, model_snapshot(model))
    assert model.training


def test_full_backward_hooks_are_suspended_and_left_in_place(setup):
    model, x, y, sel = setup
    calls = []
    handle = model[0].register_full_backward_hook(lambda mod, gi, go: calls.append(1))
    before = model_snapshot(model)
    plain = SupportVectorInfluence(model, sel).influence(x[:3])
    s2 = DeepSupportVectors(progress=False, param_names=None).attribute(model, candidates=x, labels=y)
    assert torch.allclose(s2.lambdas, sel.lambdas)
    svi = SupportVectorInfluence(model, s2)
    assert torch.allclose(svi.influence(x[:3]), plain)
    SupportVectorAttribution(model, s2).attribute(x[:3])
    s2.explain(model, x[:2], k=2)
    assert calls == []  # the user's hook saw none of our gradients
    assert_same_snapshot(before, model_snapshot(model))
    model(x[:2].requires_grad_()).sum().backward()  # and it still fires for the user
    assert calls == [1]
    handle.remove()
    assert len(model[0]._backward_hooks) == 0


def test_meta_tensors_and_wrong_dtypes_are_named(setup):
    model, x, _, sel = setup
    meta = _mlp().to("meta")
    with pytest.raises(ValueError, match="model has tensors on the 'meta' device"):
        SupportVectorInfluence(meta, sel)
    with pytest.raises(ValueError, match="model has tensors on the 'meta' device"):
        DeepSupportVectors(progress=False).attribute(meta, candidates=x, labels=torch.arange(12) % 3)
    svi = SupportVectorInfluence(model, sel)
    with pytest.raises(ValueError, match="inputs is on the 'meta' device"):
        svi.influence(x[:2].to("meta"))
    with pytest.raises(TypeError, match=r"inputs must be a floating-point tensor.*got torch.int64"):
        svi.influence(torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="inputs must be a floating-point tensor"):
        SupportVectorAttribution(model, sel).attribute(torch.ones(2, 4, dtype=torch.long))


def test_a_model_built_under_inference_mode_is_explained(setup):
    _, x, y, _ = setup
    with torch.inference_mode():
        model = _mlp().eval()
    assert next(model.parameters()).is_inference()
    sel = DeepSupportVectors(progress=False, param_names=None).attribute(model, candidates=x, labels=y)
    ref = _mlp().eval()
    want = DeepSupportVectors(progress=False, param_names=None).attribute(ref, candidates=x, labels=y)
    assert torch.allclose(sel.lambdas, want.lambdas)
    got = SupportVectorInfluence(model, sel).influence(x[:2])
    assert torch.allclose(got, SupportVectorInfluence(ref, want).influence(x[:2]))
    assert SupportVectorAttribution(model, sel).attribute(x[:2]).shape == (2, 4)
    assert sel.explain(model, x[:2], k=2).prediction.shape == (2,)


def test_volumes_are_drawn_by_their_mean_plane(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv3d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(64, 3)).eval()
    x, y = torch.randn(9, 1, 2, 4, 4), torch.arange(9) % 3
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    e = sel.explain(model, x[:1], k=2, n_steps=2)
    fig = e.plot_panel()
    assert len(fig.axes) >= 4
    html = e.to_html()
    assert "Heatmap" in html or "heatmap" in html


def test_a_sequence_model_with_a_leading_linear_takes_the_candidates_shape():
    class PerStep(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 5), nn.Linear(5, 3)

        def forward(self, x):
            return self.b(torch.tanh(self.a(x))).mean(1)

    torch.manual_seed(0)
    model = PerStep()
    x, y = torch.randn(10, 6, 4), torch.arange(10) % 3
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    assert sel.inputs.shape == (10, 6, 4)
    assert SupportVectorInfluence(model, sel).influence(x[:2]).shape == (2, 10)


def test_attribution_names_missing_forward_args_and_an_empty_support_index():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 6), nn.Linear(6, 3)

        def forward(self, x, scale):
            return self.b(torch.relu(self.a(x) * scale))

    torch.manual_seed(0)
    model = Scaled()
    x, y = torch.randn(12, 4), torch.arange(12) % 3
    sel = DeepSupportVectors(progress=False).attribute(
        model, candidates=x, labels=y, additional_forward_args=(2.0,)
    )
    sva = SupportVectorAttribution(model, sel, support_forward_args=2.0)
    with pytest.raises(TypeError, match="additional_forward_args="):
        sva.attribute(x[:2])
    assert sva.attribute(x[:2], additional_forward_args=2.0).shape == (2, 4)
    with pytest.raises(ValueError, match="support_index must name at least one row"):
        sva.attribute(x[:2], additional_forward_args=2.0, support_index=[])


def test_the_scope_of_an_expansion_can_be_all_or_free_whatever_the_results():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.LayerNorm(6), nn.ReLU(), nn.Linear(6, 3)).eval()
    x, y = torch.randn(12, 4), torch.arange(12) % 3
    last = DeepSupportVectors(progress=False, param_names=["3.weight", "3.bias"]).attribute(
        model, candidates=x, labels=y
    )
    assert SupportVectorInfluence(model, last).expansion.param_names == ["3.weight", "3.bias"]
    every = SupportVectorInfluence(model, last, param_names="all")
    assert every.expansion.param_names == [n for n, _ in model.named_parameters()]
    explicit = SupportVectorInfluence(model, last, param_names=[n for n, _ in model.named_parameters()])
    assert torch.allclose(every.influence(x[:2]), explicit.influence(x[:2]))
    # the first Linear feeds a LayerNorm: its scale is invisible to the logits, so "free" drops it
    free = SupportVectorInfluence(model, last, param_names="free").expansion.param_names
    assert free == ["1.weight", "1.bias", "3.weight", "3.bias"]
    assert SupportVectorAttribution(model, last, param_names="all").attribute(x[:2]).shape == (2, 4)
    with pytest.raises(TypeError, match="param_names must be a list of parameter names, 'all', 'free'"):
        SupportVectorInfluence(model, last, param_names="last")


def test_an_expansion_refuses_a_model_changed_in_place_after_its_cache(setup):
    model, x, y, sel = setup
    svi = SupportVectorInfluence(model, sel)
    before = svi.influence(x[:2])
    assert torch.equal(svi.influence(x[:2]), before)  # reading the model changes nothing
    with torch.no_grad():
        model[0].weight.add_(0.1)  # an optimizer step, say
    try:
        with pytest.raises(ValueError, match="changed in place after this expansion cached"):
            svi.influence(x[:2])
        fresh = SupportVectorInfluence(model, sel).influence(x[:2])
        assert not torch.allclose(fresh, before)
    finally:
        with torch.no_grad():
            model[0].weight.sub_(0.1)


def test_contributions_are_the_same_whatever_the_chunk_size(setup):
    """The queries' gradients are formed chunk by chunk (memory bounded by chunk_size * P, not
    N * P) and the cache is written into one preallocated matrix: the numbers must not move."""
    model, x, _, sel = setup
    queries = torch.randn(7, 4, generator=torch.Generator().manual_seed(3))
    want = SupportVectorInfluence(model, sel, chunk_size=256).influence(queries)
    for chunk in (1, 2, 5):
        svi = SupportVectorInfluence(model, sel, chunk_size=chunk)
        torch.testing.assert_close(svi.influence(queries), want, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(
            svi.convergence_delta(queries),
            SupportVectorInfluence(model, sel).convergence_delta(queries),
            rtol=1e-6,
            atol=1e-7,
        )


def test_numpy_integers_for_k_and_index_and_a_bool_for_proponents():
    """Stress test 6: np.int64 k / index were refused while numpy targets were accepted, and a
    non-bool proponents reached torch.topk's own TypeError."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
    x, y = torch.randn(20, 4), torch.arange(20) % 3
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    svi = SupportVectorInfluence(model, sel)
    got = svi.influence(x[:2], k=np.int64(3))
    want = svi.influence(x[:2], k=3)
    assert torch.equal(got.indices, want.indices)
    assert torch.equal(
        svi.influence(x[:2], k=2, proponents=np.bool_(False)).indices,
        svi.influence(x[:2], k=2, proponents=False).indices,
    )
    for bad in (None, "no", 1):
        with pytest.raises(TypeError, match="proponents must be a bool"):
            svi.influence(x[:2], k=2, proponents=bad)
    e = sel.explain(model, x[:3], k=np.int64(2), maps="none")
    assert e.supporting_indices.shape == (3, 2)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = e.plot(index=np.int64(1))
    plt.close(ax.figure)


def test_stress_9a_bad_soft_labels_wrong_model_baselines_and_conflicting_scope(setup):
    """Stress round 9A: invalid soft labels (NaN rows read as class 0), a model of another
    input shape (raw torch error), a baseline of one input's shape (captum's AssertionError),
    a scope given beside a prepared influence (silently ignored)."""
    model, x, y, sel = setup
    svi = SupportVectorInfluence(model, sel)
    q = x[:3]
    for bad in (torch.full((3, 3), float("nan")), -torch.eye(3), torch.full((3, 3), 0.5)):
        with pytest.raises(ValueError, match="non-negative rows that sum to 1"):
            svi.influence((q, bad))
        with pytest.raises(ValueError, match="non-negative rows that sum to 1"):
            svi.convergence_delta((q, bad))
    other = nn.Linear(7, 3)
    for make in (
        lambda: SupportVectorInfluence(other, sel),
        lambda: SupportVectorAttribution(other, sel),
        lambda: sel.explain(other, torch.randn(2, 4)),
    ):
        with pytest.raises(ValueError, match=r"support set's inputs \(each of shape \(4,\)\) failed"):
            make()
    sva = SupportVectorAttribution(model, sel)
    one = sva.attribute(q, target=0, baselines=torch.zeros(4))
    assert torch.equal(one, sva.attribute(q, target=0, baselines=torch.zeros(1, 4)))
    theta0 = {k: torch.zeros_like(v) for k, v in model.named_parameters()}
    for kwargs, name in (
        ({"param_names": "all"}, "param_names"),
        ({"reference": theta0}, "reference"),
        ({"additional_forward_args": ()}, "additional_forward_args"),
    ):
        with pytest.raises(ValueError, match=f"{name} cannot be given with influence="):
            sel.explain(model, q, k=2, influence=svi, **kwargs)


def test_stress_9a_per_input_forward_args_name_tuple_inputs():
    """A tensor argument of one row per input is not split by input: a ValueError that says to
    pass it as part of a tuple of inputs (a raw size mismatch from inside the model before)."""

    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.z, self.b = nn.Linear(4, 6), nn.Linear(2, 6), nn.Linear(6, 3)

        def forward(self, x, z):
            return self.b(torch.tanh(self.a(x) + self.z(z)))

    torch.manual_seed(0)
    model, z0 = Two(), torch.tensor([0.3, -0.2])
    x, y = torch.randn(16, 4), torch.arange(16) % 3
    sel = DeepSupportVectors(progress=False).attribute(
        model, candidates=x, labels=y, additional_forward_args=(z0,)
    )
    sva = SupportVectorAttribution(model, sel, support_forward_args=(z0,))
    with pytest.raises(ValueError, match=r"part of a tuple of inputs"):
        sva.attribute(torch.randn(3, 4), target=0, additional_forward_args=(torch.randn(3, 2),))
    assert sva.attribute(torch.randn(3, 4), target=0, additional_forward_args=(z0,)).shape == (3, 4)


def test_stress_9c_attribution_and_self_influence_build_no_gradient_matrix(setup):
    """Stress round 9C: SupportVectorAttribution read only the direction and self_influence only
    the squared norms, yet each built the (S, P) matrix of support gradients (S x P floats,
    whatever chunk_size). Each now makes a pass that keeps only what it reads; the values
    equal the cache's (float64)."""
    model, x, _, sel = setup
    model = model.double()
    sel = DeepSupportVectors(progress=False, param_names=None).attribute(
        model, candidates=x.double(), labels=sel.labels
    )
    q = x[:3].double()
    sva = SupportVectorAttribution(model, sel, chunk_size=5)
    light = sva.attribute(q, target=0, n_steps=4)
    assert sva.expansion._cache is None and sva.expansion._direction is not None
    svi = SupportVectorInfluence(model, sel, param_names=None, chunk_size=5)
    si = svi.self_influence()
    assert svi.expansion._cache is None and svi.expansion._sq_norms is not None
    full = SupportVectorInfluence(model, sel, param_names=None)
    cache = full.expansion.cache
    for k, v in cache["direction"].items():
        torch.testing.assert_close(sva.expansion.direction[k], v, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(si, full.self_influence(), rtol=1e-12, atol=1e-14)
    heavy = SupportVectorAttribution._from_expansion(full.expansion).attribute(q, target=0, n_steps=4)
    torch.testing.assert_close(light, heavy, rtol=1e-10, atol=1e-12)
    # a change of the model in place after the pass is refused, as after the cache
    with torch.no_grad():
        model[0].weight.add_(0.1)
    with pytest.raises(ValueError, match="changed in place"):
        _ = sva.expansion.direction


def test_stress_9c_integrated_gradients_rows_are_bounded_by_chunk_size(setup):
    """captum's default ran all n_steps x N rows of forward-mode passes at once (2.1 GB for 256
    queries); the default internal_batch_size is now the expansion's chunk_size."""
    model, x, _, sel = setup
    sva = SupportVectorAttribution(model, sel, chunk_size=7)
    seen = []
    handle = model.register_forward_hook(lambda module, args, out: seen.append(len(args[0])))
    try:
        bounded = sva.attribute(x[:5], target=0, n_steps=6)
    finally:
        handle.remove()
    assert max(seen) <= 7
    whole = sva.attribute(x[:5], target=0, n_steps=6, internal_batch_size=30)
    torch.testing.assert_close(bounded, whole, rtol=1e-5, atol=1e-6)


def test_stress_9e_captum_conventions_saliency_targets_loaders_and_deltas(setup):
    """Stress round 9E against captum 0.9: Saliency's abs=True default (ours was signed, no
    abs), multiplies_by_inputs (False for IG), tuple targets (refused; NoiseTunnel broke),
    a DataLoader of queries (refused), compute_convergence_delta of one support vector's
    attributions (measured the whole expansion: a silent wrong delta)."""
    from captum.attr import IntegratedGradients, NoiseTunnel, Saliency
    from torch.utils.data import DataLoader, TensorDataset

    model, x, y, sel = setup
    q = x[:3]
    sal = SupportVectorAttribution(model, sel, method="saliency")
    want = Saliency(sal.forward_func).attribute(q.clone().requires_grad_(), target=1)
    torch.testing.assert_close(sal.attribute(q, target=1), want)
    signed = sal.attribute(q, target=1, abs=False)
    torch.testing.assert_close(signed.abs(), want)
    with pytest.raises(ValueError, match="abs applies to method='saliency'"):
        SupportVectorAttribution(model, sel).attribute(q, target=1, abs=True)
    ig = SupportVectorAttribution(model, sel)
    assert ig.multiplies_by_inputs and not sal.multiplies_by_inputs
    assert NoiseTunnel(ig).multiplies_by_inputs == IntegratedGradients(ig.forward_func).multiplies_by_inputs
    # captum's target forms: (c,) for every input, [(c,), ...] one per input
    torch.testing.assert_close(ig.attribute(q, target=(1,), n_steps=4), ig.attribute(q, target=1, n_steps=4))
    torch.testing.assert_close(
        ig.attribute(q, target=[(0,), (1,), (2,)], n_steps=4), ig.attribute(q, target=[0, 1, 2], n_steps=4)
    )
    with pytest.raises(ValueError, match=r"tuple of one class, \(c,\)"):
        ig.attribute(q, target=(0, 1, 2), n_steps=4)
    torch.manual_seed(0)
    a = NoiseTunnel(ig).attribute(q, target=(1,), nt_samples=2, n_steps=4)
    assert a.shape == q.shape
    # a DataLoader of queries, as TracInCP.influence takes
    svi = SupportVectorInfluence(model, sel)
    loader = DataLoader(TensorDataset(x[:5], y[:5]), batch_size=2)
    torch.testing.assert_close(svi.influence(loader), svi.influence((x[:5], y[:5])))
    top = svi.influence(DataLoader(TensorDataset(x[:5], y[:5]), batch_size=3), k=2)
    assert torch.equal(top.indices, svi.influence((x[:5], y[:5]), k=2).indices)
    # the delta of one support vector's attributions, recomputed by captum's method
    attr, delta = ig.attribute(q, target=1, support_index=2, n_steps=16, return_convergence_delta=True)
    again = ig.compute_convergence_delta(attr, torch.zeros_like(q), q, target=1, support_index=2)
    torch.testing.assert_close(again, delta, rtol=1e-5, atol=1e-6)
    whole = ig.compute_convergence_delta(attr, torch.zeros_like(q), q, target=1)
    assert not torch.allclose(whole, delta, atol=1e-4)


def test_review_60_unrelated_errors_pass_and_few_rows_per_batch_do_not_warn(setup):
    """Review of this stop: any RuntimeError was rewritten as a per-input forward-args problem
    when some argument had N rows; a chunk_size below N made captum warn (internal batch size
    below the inputs' count); compute_convergence_delta failed inside inference_mode."""
    import warnings

    class Scaled(nn.Module):
        def __init__(self, body):
            super().__init__()
            self.body, self.fail = body, False

        def forward(self, x, w):
            if self.fail:
                raise RuntimeError("boom")
            return self.body(x) * w

    model, x, y, _ = setup
    scaled = Scaled(model)
    w = torch.ones(3)  # a per-class weight: 3 entries, as many as the inputs below
    sel = DeepSupportVectors(progress=False).attribute(
        scaled, candidates=x, labels=y, additional_forward_args=(w,)
    )
    sva = SupportVectorAttribution(scaled, sel, support_forward_args=(w,), chunk_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = sva.attribute(x[:3], target=0, additional_forward_args=(w,), n_steps=4)
    assert a.shape == (3, 4)
    scaled.fail = True
    with pytest.raises(RuntimeError, match="boom"):
        sva.attribute(x[:3], target=0, additional_forward_args=(w,), n_steps=4)
    scaled.fail = False
    plain = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    ig = SupportVectorAttribution(model, plain)
    attr, delta = ig.attribute(x[:3], target=1, support_index=2, n_steps=8, return_convergence_delta=True)
    with torch.inference_mode():
        again = ig.compute_convergence_delta(attr, torch.zeros_like(x[:3]), x[:3], target=1, support_index=2)
    torch.testing.assert_close(again, delta, rtol=1e-5, atol=1e-6)


def test_labels_and_targets_made_under_inference_mode(setup):
    """Labels and targets made under ``torch.inference_mode`` work as inputs made there do
    (they raised torch's "Inference tensors cannot be saved for backward")."""
    model, x, y, support = setup
    with torch.inference_mode():
        y_inf, x_inf = y.clone(), x.clone()
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x_inf, labels=y_inf)
    assert torch.isfinite(sel.lambdas).all()
    svi = SupportVectorInfluence(model, support)
    torch.testing.assert_close(svi.influence((x[:4], y_inf[:4])), svi.influence((x[:4], y[:4])))
    e = support.explain(model, x[:2], target=y_inf[:2], maps="none")
    assert e.target.tolist() == y[:2].tolist()


def test_expansion_seed_checked_when_built(setup):
    """A bad sketch seed is refused by the constructor, naming it (it failed inside torch at the
    first sketched query, and -1 was taken silently)."""
    model, _, _, support = setup
    with pytest.raises(TypeError, match="seed must be an int"):
        SupportVectorInfluence(model, support, projection_dim=16, seed="a")
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        SupportVectorInfluence(model, support, projection_dim=16, seed=-1)
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*63\)"):
        SupportVectorInfluence(model, support, projection_dim=16, seed=2**70)


def test_batch_labels_out_of_range_are_named_labels(setup):
    model, x, y, support = setup
    with pytest.raises(ValueError, match=r"labels \(the y of an \(x, y\) batch\) must lie in \[0, 3\)"):
        SupportVectorInfluence(model, support).influence((x[:2], torch.tensor([3, 4])))


def test_equal_multipliers_refuse_a_model_of_another_class_count(setup):
    from kktexplain.attr import equal_multipliers

    _, _, _, support = setup
    other = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5))  # same layers, 5 classes
    with pytest.raises(ValueError, match="made for a model with 3 classes; this model returns 5 logits"):
        equal_multipliers(other, support)


def test_explain_reuses_its_support_gradients_until_something_changes(setup):
    """explain without influence= rebuilt the support gradients on every call (4.5 s per call at
    4,000 support vectors of a 72k-parameter MLP, 0.016 s reused)."""
    import copy
    import pickle

    model, x, _, support = setup
    first = support.explain(model, x[:1], maps="none")
    svi = support._explain_cache[-1]
    again = support.explain(model, x[1:2], maps="none")
    assert support._explain_cache[-1] is svi  # reused
    fresh = SupportVectorInfluence(model, support).influence(x[1:2])
    torch.testing.assert_close(again.supporting_contributions[0], fresh[0].topk(5).values)
    support.explain(model, x[:1], maps="none", param_names=["2.weight", "2.bias"])
    assert support._explain_cache[-1] is not svi  # another scope: another influence
    svi = support._explain_cache[-1]
    with torch.no_grad():
        model[0].weight.add_(0.5)  # the model changed since: rebuilt, not stale
    changed = support.explain(model, x[:1], maps="none", param_names=["2.weight", "2.bias"])
    assert support._explain_cache[-1] is not svi
    ref = SupportVectorInfluence(model, support, param_names=["2.weight", "2.bias"]).influence(x[:1])
    torch.testing.assert_close(changed.supporting_contributions[0], ref[0].topk(5).values)
    assert not torch.equal(changed.exact, first.exact)
    svi = support._explain_cache[-1]
    support.lambdas = support.lambdas * 2  # new multipliers: rebuilt
    support.explain(model, x[:1], maps="none", param_names=["2.weight", "2.bias"])
    assert support._explain_cache[-1] is not svi
    svi = support._explain_cache[-1]
    with torch.no_grad():
        support.lambdas.mul_(2.0)  # in place: rebuilt
    support.explain(model, x[:1], maps="none", param_names=["2.weight", "2.bias"])
    assert support._explain_cache[-1] is not svi
    names = np.array(["2.weight", "2.bias"])  # equal, distinct arrays: reused, no ambiguity error
    support.explain(model, x[:1], maps="none", param_names=names)
    svi = support._explain_cache[-1]
    support.explain(model, x[:1], maps="none", param_names=names.copy())
    assert support._explain_cache[-1] is svi
    model.double()  # same values, another dtype: rebuilt, and float64 numbers
    e64 = support.explain(model, x[:1].double(), maps="none", param_names=names)
    assert support._explain_cache[-1] is not svi and e64.exact.dtype == torch.float64
    model.float()
    assert not hasattr(copy.deepcopy(support), "_explain_cache")  # copies and pickles leave it out
    assert not hasattr(pickle.loads(pickle.dumps(support)), "_explain_cache")
    support.clear_cache()
    assert not hasattr(support, "_explain_cache")


def test_equal_multipliers_of_a_displacement_support_take_the_reference(setup):
    """The class-count check built its expansion without the caller's reference= and refused
    every support solved for the displacement theta* - theta_0."""
    from kktexplain.attr import equal_multipliers

    model, x, y, _ = setup
    init = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    support = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y, reference=init)
    out = equal_multipliers(model, support, reference=init)
    assert out.settings["displacement"] and len(set(out.lambdas.tolist())) == 1


def test_explain_cache_takes_unusual_settings(setup):
    """The kept influence's key crashed on inference-mode tensors (no version counter), read a
    param_names generator (then empty for the influence), and missed a non-tensor forward
    argument changed in place."""
    model, x, _, support = setup
    with torch.inference_mode():
        ref = {k: v.clone() * 0.5 for k, v in model.named_parameters()}
    support.explain(model, x[:1], maps="none", reference=ref)  # no RuntimeError
    names = (n for n in ["2.weight", "2.bias"])
    e = support.explain(model, x[:1], maps="none", param_names=names)
    fresh = SupportVectorInfluence(model, support, param_names=["2.weight", "2.bias"]).influence(x[:1])
    torch.testing.assert_close(e.supporting_contributions[0], fresh[0].topk(5).values)

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = _mlp()

        def forward(self, x, cfg):
            return self.body(x) * cfg["s"]

    scaled = Scaled().eval()
    sel = DeepSupportVectors(progress=False).attribute(scaled, candidates=x, labels=x[:, 0].gt(0).long(),
                                                       additional_forward_args=({"s": 1.0},))  # fmt: skip
    cfg = {"s": 1.0}
    sel.explain(scaled, x[:1], maps="none", additional_forward_args=(cfg,))
    cfg["s"] = 3.0  # changed in place: rebuilt, the same as a fresh explanation
    e = sel.explain(scaled, x[:1], maps="none", additional_forward_args=(cfg,))
    sel.clear_cache()
    torch.testing.assert_close(
        e.exact, sel.explain(scaled, x[:1], maps="none", additional_forward_args=(cfg,)).exact
    )
