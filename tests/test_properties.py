"""Properties of the method that no other test states on its own (each found by a mutant)."""

import time

import pytest
import torch

from kktexplain import DeepSupportVectors
from kktexplain.models import MLP

PAUSE = 0.05


def _mlp():
    torch.manual_seed(0)
    return MLP((6,), 3, hidden=(8,))


def test_synthesis_records_its_wall_time():
    # settings["seconds"] is the wall time of the synthesis loop: at least the time the loop
    # spent (a callback that sleeps PAUSE after each step), at most the time of the whole call
    steps = 4
    est = DeepSupportVectors(n_per_class=2, steps=steps, progress=False, seed=0)
    t0 = time.perf_counter()
    dsv = est.attribute(_mlp(), callback=lambda step, row: time.sleep(PAUSE))
    wall = time.perf_counter() - t0
    seconds = dsv.settings["seconds"]
    assert isinstance(seconds, float)
    assert steps * PAUSE <= seconds <= wall


class _Slow(torch.nn.Module):
    """Delegates to ``inner`` and sleeps PAUSE on every forward."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.input_shape = inner.input_shape
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        time.sleep(PAUSE)
        return self.inner(x)


def test_selection_records_its_wall_time_and_the_gradient_part_of_it():
    model = _Slow(_mlp())
    x, y = torch.randn(6, 6), torch.arange(6) % 3
    t0 = time.perf_counter()
    dsv = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    wall = time.perf_counter() - t0
    seconds, grad_seconds = dsv.settings["seconds"], dsv.settings["gradient_seconds"]
    assert model.calls >= 1
    assert PAUSE <= grad_seconds <= seconds <= wall


def test_the_result_records_the_schedule_it_ran():
    # settings hold the steps and lr actually used: the documented defaults per init, or the
    # user's; the history has one row per step
    x0 = torch.randn(6, 6)
    y0 = torch.arange(6) % 3
    cases = [
        ({"init": "noise", "steps": 3}, {}, 0.05),
        ({"init": "real", "steps": 2}, {"init_data": (x0, y0)}, 0.01),
        ({"init": "noise", "steps": 2, "lr": 0.02}, {}, 0.02),
    ]
    for settings, kwargs, lr in cases:
        est = DeepSupportVectors(n_per_class=2, progress=False, seed=0, **settings)
        dsv = est.attribute(_mlp(), **kwargs)
        assert est.resolved_schedule() == (settings["steps"], lr)
        assert dsv.settings["steps"] == settings["steps"] and dsv.settings["lr"] == lr
        assert len(dsv.history["total"]) == settings["steps"]


def test_without_checkpoint_every_the_checkpoint_is_written_only_at_the_end(tmp_path, monkeypatch):
    import kktexplain._synthesis as synthesis

    real = synthesis.synthesis_step

    def crash_in_step(k):  # a failure inside step k + 1 (its state is rolled back)
        def step(state, *args, **kwargs):
            if state.step == k:
                raise RuntimeError("crash")
            return real(state, *args, **kwargs)

        return step

    est = DeepSupportVectors(n_per_class=2, steps=4, progress=False, seed=0)
    ck = tmp_path / "run.npz"
    monkeypatch.setattr(synthesis, "synthesis_step", crash_in_step(2))
    with pytest.raises(RuntimeError, match="crash"):
        est.attribute(_mlp(), checkpoint=ck)
    assert not ck.exists()  # no periodic saves were asked for
    with pytest.raises(RuntimeError, match="crash"):
        est.attribute(_mlp(), checkpoint=ck, checkpoint_every=2)
    monkeypatch.setattr(synthesis, "synthesis_step", real)
    assert est.attribute(_mlp(), checkpoint=ck).settings["resumed_from_step"] == 2
    ck2 = tmp_path / "full.npz"
    est.attribute(_mlp(), checkpoint=ck2)
    assert ck2.exists()
    assert est.attribute(_mlp(), checkpoint=ck2).settings["resumed_from_step"] == 4


def test_the_progress_bar_advances_one_per_step(monkeypatch):
    import kktexplain._synthesis as synthesis

    bars = []

    class Bar:
        def __init__(self, total=None, initial=0, **kwargs):
            self.total, self.n = total, initial
            bars.append(self)

        def update(self, k=1):
            self.n += k

        def close(self):
            pass

    monkeypatch.setattr(synthesis, "tqdm", Bar)
    DeepSupportVectors(n_per_class=2, steps=3, progress=True, seed=0).attribute(_mlp())
    assert [(b.total, b.n) for b in bars] == [(3, 3)]


def _literal_residuals(model, x, soft, lam):
    """Every KKT residual of (x, labels, λ), written out sample by sample in float64."""
    params = dict(model.named_parameters())
    g = {k: torch.zeros_like(v) for k, v in params.items()}
    for i in range(len(x)):
        logp = torch.log_softmax(model(x[i : i + 1])[0], -1)
        loss = -(soft[i] * logp).sum()
        for k, gi in zip(params, torch.autograd.grad(loss, list(params.values()))):
            g[k] += lam[i] * gi
    with torch.no_grad():
        logits = model(x)
        theta = torch.cat([v.flatten() for v in params.values()])
        gf = torch.cat([v.flatten() for v in g.values()])
        r = theta + gf
        y = soft.argmax(-1)
        own = logits[torch.arange(len(x)), y]
        others = torch.stack([torch.cat([row[:c], row[c + 1 :]]).max() for row, c in zip(logits, y)])
        logp = torch.log_softmax(logits, -1)
        ce = -(soft * logp).sum(-1)
        feasible = logits.argmax(-1) == y

        def cos(a, b):
            return float(a @ b / (a.norm() * b.norm()))

        return {
            "stationarity": {
                "cosine": cos(theta, -gf),
                "rel_l1": float(r.abs().sum() / theta.abs().sum()),
                "rel_l2": float(r.norm() / theta.norm()),
                "l1": float(r.abs().mean()),
                "g_norm_ratio": float(gf.norm() / theta.norm()),
            },
            "per_layer_cosine": {k: cos(params[k].flatten(), -g[k].flatten()) for k in params},
            "margin": own - others,
            "feasible": feasible,
            "primal_loss": torch.where(feasible, 0.0, ce),
            "entropy": -(logp.exp() * logp).sum(-1),
            "dual_violation": torch.clamp(-lam, min=0),
            "norm": x.pow(2).mean(1),
        }


@pytest.mark.parametrize("soft_labels", [False, True])
def test_kkt_residuals_are_the_kkt_conditions_written_out_for_any_chunking(soft_labels):
    from kktexplain.kkt import FunctionalModel, kkt_residuals

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    n = 7
    x = torch.randn(n, 4, dtype=torch.float64) * 2
    with torch.no_grad():
        y = model(x).argmax(-1)
    y[[1, 4, 6]] = (y[[1, 4, 6]] + 1) % 3  # three samples misclassified, four feasible
    soft = torch.nn.functional.one_hot(y, 3).double()
    if soft_labels:
        soft = 0.8 * soft + 0.2 * torch.rand(n, 3, dtype=torch.float64).softmax(-1)
    lam = torch.rand(n, dtype=torch.float64) * 2
    lam[3] = -0.5  # a dual violation
    want = _literal_residuals(model, x, soft, lam)
    assert 0 < int(want["feasible"].sum()) < n  # both branches of the masked loss are exercised
    labels = soft if soft_labels else y
    for chunk in (1, 3, n, 1024):
        got = kkt_residuals(FunctionalModel(model), x, labels, lam, chunk_size=chunk)
        for key, value in want["stationarity"].items():
            assert got.stationarity[key] == pytest.approx(value, rel=1e-10, abs=1e-12), (chunk, key)
        assert set(got.per_layer_cosine) == set(want["per_layer_cosine"])
        for key, value in want["per_layer_cosine"].items():
            assert got.per_layer_cosine[key] == pytest.approx(value, rel=1e-10, abs=1e-12), (chunk, key)
        assert torch.equal(got.feasible, want["feasible"])
        for key in ("margin", "primal_loss", "entropy", "dual_violation", "norm"):
            torch.testing.assert_close(getattr(got, key).double(), want[key], rtol=1e-10, atol=1e-12)
        assert torch.equal(got.tv, torch.zeros(n, dtype=got.tv.dtype))  # flat inputs have no TV
        assert got.feasibility_rate == pytest.approx(float(want["feasible"].double().mean()))


@pytest.mark.parametrize("batch_size", [1, 2, 4])
def test_a_chunked_step_never_shows_the_model_more_than_batch_size_inputs(batch_size):
    # batch_size bounds memory: every forward of the chunked step, the first pass (the
    # stationarity sum) included, sees at most batch_size candidates
    from kktexplain._chunked import chunked_objective_backward
    from kktexplain.kkt import Augmentation, FunctionalModel, KKTObjective

    model = _mlp()
    seen = []
    hook = model.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    try:
        x = torch.randn(7, 6, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
        rho = torch.zeros(7, requires_grad=True)
        chunked_objective_backward(
            KKTObjective(),
            FunctionalModel(model),
            x,
            torch.arange(7) % 3,
            rho.exp(),
            Augmentation(noise=0.01),
            torch.Generator().manual_seed(0),
            batch_size,
        )
    finally:
        hook.remove()
    assert seen and max(seen) <= batch_size
    assert x.grad is not None and rho.grad is not None


def test_the_kkt_summary_is_the_residuals_in_scalars():
    model = _mlp()
    x = torch.randn(9, 6, generator=torch.Generator().manual_seed(2))
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=torch.arange(9) % 3)
    kkt, summary = sel.kkt, sel.kkt.summary()
    assert summary["feasibility_rate"] == pytest.approx(kkt.feasible.float().mean().item())
    assert summary["mean_entropy"] == pytest.approx(kkt.entropy.mean().item())
    assert summary["mean_margin"] == pytest.approx(kkt.margin.mean().item())
    for key, value in kkt.stationarity.items():
        assert summary[f"stationarity_{key}"] == value
    assert len(summary) == 3 + len(kkt.stationarity)


def test_a_loaded_state_owns_its_history():
    # the history a state loads is its own: later steps must not write into the dict it came from
    # (a checkpoint's state, or the snapshot a failed step rolls back to)
    from kktexplain._multipliers import Multipliers
    from kktexplain._state import SynthesisConfig, init_state

    config = SynthesisConfig("exp", 1.0, None, 3, 0.01, 0.05, "adam", None, 0, False)
    state = init_state(torch.zeros(4, 6), Multipliers("exp", 1.0), config, 1.0)
    state.history = {"entropy": [0.5, 0.4], "feasibility": [1.0, 1.0]}
    saved = state.state_dict()
    other = init_state(torch.zeros(4, 6), Multipliers("exp", 1.0), config, 1.0)
    other.load_state_dict(saved)
    other.history["entropy"].append(0.3)
    assert saved["history"] == {"entropy": [0.5, 0.4], "feasibility": [1.0, 1.0]}
    assert other.history["entropy"] == [0.5, 0.4, 0.3]


@pytest.mark.parametrize(("dual", "scale", "lambda_max"), [("exp", 9.666, 9.131), ("clamp", 0.15, 5.492)])
def test_the_bound_on_rho_keeps_lambda_at_most_lambda_max_after_rounding(dual, scale, lambda_max):
    # these (scale, lambda_max) pairs round f^-1(lambda_max / s) up in float32, so that
    # s * f(rho_max) would exceed lambda_max without the ulp steps down
    import math

    from kktexplain._multipliers import Multipliers

    m = Multipliers(dual, scale, lambda_max)
    naive = torch.tensor(math.log(lambda_max / scale) if dual == "exp" else lambda_max / scale)
    limit = torch.tensor(lambda_max, dtype=torch.float32)
    assert bool((m._value(naive.expand(17)) > limit).any())  # the case the steps exist for
    r = torch.tensor(m.rho_max(torch.float32))
    assert bool((m._value(r.expand(17)) <= limit).all())
    up = torch.nextafter(r, torch.tensor(math.inf))
    assert bool((m._value(up.expand(17)) > limit).any())  # the largest such rho: one ulp more exceeds
    lam = m(torch.full((5,), 50.0), torch.ones(5, dtype=torch.bool))
    assert bool((lam <= limit).all())


def test_a_synthesis_result_records_its_mode_and_the_parameters_it_measured():
    model = _mlp()
    names = ["3.weight", "3.bias"]
    assert names == [n for n, _ in model.named_parameters()][-2:]
    dsv = DeepSupportVectors(n_per_class=1, steps=2, param_names=names, progress=False).attribute(model)
    assert dsv.settings["mode"] == "synthesis" and dsv.settings["param_names"] == names
    full = DeepSupportVectors(n_per_class=1, steps=2, progress=False).attribute(model)
    assert full.settings["param_names"] == [n for n, _ in model.named_parameters()]
