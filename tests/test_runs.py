"""Runs that survive: checkpoints and resume, Ctrl-C, NaN, atomic and versioned files."""

import json

import numpy as np
import pytest
import torch
from conftest import assert_same_snapshot, model_snapshot
from torch import nn

import kktexplain._io as io
from kktexplain import DeepSupportVectors, DSVResult, NonFiniteError
from kktexplain.models import MLP

SETTINGS = {
    "adam_exp": {"n_per_class": 2, "steps": 10, "progress": False, "seed": 1},
    "sgd_prune_bound": {
        "n_per_class": 2,
        "steps": 10,
        "dual": "prune",
        "lambda_max": 1.5,
        "lr_lambda": 1.0,
        "optimizer": "sgd",
        "objective": "paper_alg1",
        "progress": False,
        "seed": 2,
    },
}


def _mlp(seed=0):
    torch.manual_seed(seed)
    return MLP((6,), 3, hidden=(8,))


def _same(a: DSVResult, b: DSVResult) -> None:
    assert torch.equal(a.inputs, b.inputs)
    assert torch.equal(a.lambdas, b.lambdas)
    assert torch.equal(a.active, b.active)
    assert a.history == b.history


def _stop_at(k, exc=KeyboardInterrupt):
    def callback(step, row):
        assert set(row) >= {"total", "entropy"}
        if step == k - 1:
            raise exc()

    return callback


@pytest.mark.parametrize("name", list(SETTINGS))
def test_ctrl_c_returns_a_partial_result_and_resume_equals_an_uninterrupted_run(tmp_path, name):
    settings = SETTINGS[name]
    model = _mlp()
    full = DeepSupportVectors(**settings).attribute(model)
    assert full.partial is False and full.settings["partial"] is False
    ck = tmp_path / "run"  # ".npz" is appended
    part = DeepSupportVectors(**settings).attribute(model, checkpoint=ck, callback=_stop_at(5))
    assert part.partial and part.settings["stopped"] == {"reason": "interrupted", "step": 5}
    assert len(part.history["total"]) == 5 and (tmp_path / "run.npz").exists()
    _same(part, DeepSupportVectors(**{**settings, "steps": 5}).attribute(model))  # the state at step 5
    resumed = DeepSupportVectors(**settings).attribute(model, checkpoint=ck)
    assert resumed.settings["resumed_from_step"] == 5 and not resumed.partial
    _same(resumed, full)


@pytest.mark.parametrize("dual", ["exp", "prune"])
def test_resume_with_exact_lambda_steps_equals_an_uninterrupted_run(tmp_path, dual):
    # exact λ steps after steps 5 and 10, and after the last (12)
    settings = {"n_per_class": 2, "steps": 12, "lambda_solve_every": 5, "dual": dual, "progress": False}
    model = _mlp()
    full = DeepSupportVectors(**settings).attribute(model)
    ck = tmp_path / "run"
    part = DeepSupportVectors(**settings).attribute(model, checkpoint=ck, callback=_stop_at(7))
    assert part.partial and part.settings["stopped"]["step"] == 7
    resumed = DeepSupportVectors(**settings).attribute(model, checkpoint=ck)
    _same(resumed, full)
    # a run that ended reports the solved λ as they are: exact zeros, not exp's floor
    assert bool((full.lambdas == 0).any()) or dual == "prune"


def test_cosine_schedule_follows_the_half_cosine_and_resumes_exactly(tmp_path):
    """lr_schedule="cosine": step t runs at lr * (1 + cos(pi t / T)) / 2, and a resumed run
    takes the same steps as an uninterrupted one (the rate comes from the step number)."""
    import math

    import kktexplain._synthesis as synthesis

    settings = {"n_per_class": 2, "steps": 10, "lr": 0.04, "lr_lambda": 0.02, "progress": False}
    model = _mlp()
    seen = []
    real = synthesis.synthesis_step

    def spy(state, *args, **kwargs):
        seen.append((state.step, [g["lr"] for g in state.optimizer.param_groups]))
        return real(state, *args, **kwargs)

    synthesis.synthesis_step = spy
    try:
        full = DeepSupportVectors(lr_schedule="cosine", **settings).attribute(model)
        constant = DeepSupportVectors(**settings).attribute(model)
    finally:
        synthesis.synthesis_step = real
    for step, (lr, lr_lambda) in seen[:10]:
        factor = 0.5 * (1 + math.cos(math.pi * step / 10))
        assert lr == pytest.approx(0.04 * factor) and lr_lambda == pytest.approx(0.02 * factor)
    assert all(lrs == [0.04, 0.02] for _, lrs in seen[10:])
    assert not torch.equal(full.inputs, constant.inputs)
    ck = tmp_path / "run"
    part = DeepSupportVectors(lr_schedule="cosine", **settings).attribute(
        model, checkpoint=ck, callback=_stop_at(4)
    )
    assert part.partial
    resumed = DeepSupportVectors(lr_schedule="cosine", **settings).attribute(model, checkpoint=ck)
    _same(resumed, full)
    with pytest.raises(ValueError, match="lr_schedule"):
        DeepSupportVectors(lr_schedule="linear", **settings).attribute(model)


def test_a_crash_resumes_from_the_last_periodic_checkpoint(tmp_path):
    settings = SETTINGS["adam_exp"]
    model = _mlp()
    full = DeepSupportVectors(**settings).attribute(model)
    ck = tmp_path / "run.npz"
    import kktexplain._synthesis as synthesis

    real = synthesis.synthesis_step

    def crash(state, *args, **kwargs):  # a failure inside step 8 (the state is rolled back)
        if state.step == 7:
            raise RuntimeError("crash")
        return real(state, *args, **kwargs)

    synthesis.synthesis_step = crash
    try:
        with pytest.raises(RuntimeError, match="crash"):
            DeepSupportVectors(**settings).attribute(model, checkpoint=ck, checkpoint_every=3)
    finally:
        synthesis.synthesis_step = real
    resumed = DeepSupportVectors(**settings).attribute(model, checkpoint=ck)
    assert resumed.settings["resumed_from_step"] == 6
    _same(resumed, full)
    # a finished checkpoint resumes to the same result without a step
    again = DeepSupportVectors(**settings).attribute(model, checkpoint=ck)
    assert again.settings["resumed_from_step"] == 10
    _same(again, full)


class Poisoned(nn.Module):
    """An MLP whose logits turn NaN once ``poison`` is set."""

    input_shape = (6,)

    def __init__(self):
        super().__init__()
        self.net = _mlp()
        self.poison = False

    def forward(self, x):
        out = self.net(x)
        return out * float("nan") if self.poison else out


@pytest.mark.parametrize("k", [0, 4])
def test_a_nan_at_step_k_is_reported_at_step_k_with_the_last_good_state(tmp_path, k):
    settings = SETTINGS["adam_exp"]
    model = Poisoned()
    model.poison = k == 0

    def poison(step, row):
        if step == k - 1:
            model.poison = True

    ck = tmp_path / "ck.npz"
    with pytest.raises(NonFiniteError, match=f"at step {k}") as info:
        DeepSupportVectors(**settings).attribute(model, checkpoint=ck, callback=poison)
    err = info.value
    assert err.step == k and err.term == "stationarity"
    assert err.result.partial
    assert err.result.settings["stopped"] == {"reason": "non-finite", "step": k, "term": "stationarity"}
    assert len(err.result.history.get("total", [])) == k
    model.poison = False
    if k > 0:
        _same(err.result, DeepSupportVectors(**{**settings, "steps": k}).attribute(model))
    # the checkpoint holds the last good state: resuming finishes the clean run
    resumed = DeepSupportVectors(**settings).attribute(model, checkpoint=ck)
    assert resumed.settings["resumed_from_step"] == k
    _same(resumed, DeepSupportVectors(**settings).attribute(model))


def test_save_load_with_or_without_the_suffix(tmp_path):
    dsv = DeepSupportVectors(n_per_class=1, steps=2, progress=False).attribute(_mlp())
    written = dsv.save(tmp_path / "x")
    assert written == tmp_path / "x.npz" and written.exists() and not (tmp_path / "x").exists()
    for path in (tmp_path / "x", tmp_path / "x.npz", str(tmp_path / "x")):
        back = DSVResult.load(path)
        _same(back, dsv)
        assert back.settings["partial"] is False
    dsv.save(str(tmp_path / "y.npz"))
    _same(DSVResult.load(tmp_path / "y"), dsv)


def test_atomic_save_keeps_the_old_file_when_killed_before_the_rename(tmp_path, monkeypatch):
    model = _mlp()
    old = DeepSupportVectors(n_per_class=1, steps=1, progress=False).attribute(model)
    new = DeepSupportVectors(n_per_class=1, steps=3, progress=False).attribute(model)
    old.save(tmp_path / "r.npz")

    def killed(src, dst):
        raise OSError("killed between write and rename")

    monkeypatch.setattr(io.os, "replace", killed)
    with pytest.raises(OSError, match="killed"):
        new.save(tmp_path / "r.npz")
    monkeypatch.undo()
    _same(DSVResult.load(tmp_path / "r.npz"), old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.npz"]  # no temporary left behind


def test_truncated_foreign_and_newer_files_are_refused(tmp_path):
    dsv = DeepSupportVectors(n_per_class=1, steps=1, progress=False).attribute(_mlp())
    good = dsv.save(tmp_path / "good")
    data = good.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        (tmp_path / "cut.npz").write_bytes(data[:cut])
        with pytest.raises(ValueError, match="truncated or not a kktexplain file"):
            DSVResult.load(tmp_path / "cut.npz")
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
    np.save(tmp_path / "single.npy", np.zeros(3))
    (tmp_path / "text.npz").write_text("hello")
    for name in ("foreign.npz", "single.npy", "text.npz"):
        with pytest.raises(ValueError, match="not a kktexplain file"):
            DSVResult.load(tmp_path / name)
    header = {"format": "kktexplain", "version": 99, "kind": "result", "meta": {}}
    blob = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(tmp_path / "newer.npz", __header__=blob)
    with pytest.raises(ValueError, match="format version 99"):
        DSVResult.load(tmp_path / "newer.npz")
    model = _mlp()
    DeepSupportVectors(n_per_class=1, steps=1, progress=False).attribute(model, checkpoint=tmp_path / "ck")
    with pytest.raises(ValueError, match="holds a 'checkpoint', not a 'result'"):
        DSVResult.load(tmp_path / "ck")
    with pytest.raises(FileNotFoundError):
        DSVResult.load(tmp_path / "missing")


def test_results_written_before_the_header_still_load(tmp_path):
    dsv = DeepSupportVectors(n_per_class=1, steps=2, progress=False).attribute(_mlp())
    meta = {
        "history": dsv.history,
        "settings": dsv.settings,
        "stationarity": dsv.kkt.stationarity,
        "per_layer_cosine": dsv.kkt.per_layer_cosine,
    }
    arrays = {"inputs": dsv.inputs, "labels": dsv.labels, "lambdas": dsv.lambdas, "active": dsv.active}
    for k in ("margin", "feasible", "primal_loss", "entropy", "dual_violation", "tv", "norm"):
        arrays[f"kkt_{k}"] = getattr(dsv.kkt, k)
    np.savez_compressed(
        tmp_path / "old.npz",
        meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        **{k: v.numpy() for k, v in arrays.items()},
    )
    _same(DSVResult.load(tmp_path / "old.npz"), dsv)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"checkpoint": 123}, TypeError, "checkpoint must be"),
        ({"checkpoint": ""}, TypeError, "checkpoint must be"),
        ({"checkpoint": "{tmp}"}, ValueError, "checkpoint .* is a directory"),
        ({"checkpoint": "{tmp}/no/such/folder/ck"}, ValueError, "checkpoint .* does not exist"),
        ({"checkpoint": "{tmp}/foreign.npz"}, ValueError, "checkpoint .*not a kktexplain file"),
        ({"checkpoint_every": 0}, ValueError, "checkpoint_every must be > 0"),
        ({"checkpoint_every": 2.5}, TypeError, "checkpoint_every must be an int"),
        ({"checkpoint_every": 2}, ValueError, "checkpoint_every needs checkpoint"),
        ({"callback": 3}, TypeError, "callback must be callable"),
    ],
)
def test_bad_run_options_name_the_parameter_and_leave_the_model(tmp_path, kwargs, exc, match):
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
    kwargs = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in kwargs.items()}
    model = _mlp()
    before = model_snapshot(model)
    with pytest.raises(exc, match=match):
        DeepSupportVectors(n_per_class=1, steps=2, progress=False).attribute(model, **kwargs)
    assert_same_snapshot(before, model_snapshot(model))


def test_selection_takes_no_checkpoint(tmp_path):
    x, y = torch.randn(6, 6), torch.arange(6) % 3
    with pytest.raises(ValueError, match="checkpoint and callback are for synthesis"):
        DeepSupportVectors(progress=False).attribute(
            _mlp(), candidates=x, labels=y, checkpoint=tmp_path / "c"
        )


@pytest.mark.parametrize(
    "change, match",
    [
        ({"lr": 0.02}, "lr="),
        ({"seed": 5}, "seed="),
        ({"dual": "clamp"}, "dual="),
        ({"objective": "paper_alg1"}, "objective="),
        ({"augmentation": None}, "augmentation="),
        ({"n_per_class": 3}, "n_per_class="),
        ({"lambda_max": 2.0}, "lambda_max="),
        ({"steps": 2}, "steps=2 is fewer than the 3 steps"),
    ],
)
def test_resuming_with_other_settings_names_the_parameter(tmp_path, change, match):
    base = {"n_per_class": 2, "steps": 3, "progress": False}
    model = _mlp()
    DeepSupportVectors(**base).attribute(model, checkpoint=tmp_path / "ck")
    with pytest.raises(ValueError, match=match):
        DeepSupportVectors(**{**base, **change}).attribute(model, checkpoint=tmp_path / "ck")


def test_resuming_with_another_model_or_labels_names_it(tmp_path):
    base = {"n_per_class": 2, "steps": 3, "progress": False}
    DeepSupportVectors(**base).attribute(_mlp(), checkpoint=tmp_path / "ck")
    with pytest.raises(ValueError, match="other model weights or buffers than this run's"):
        DeepSupportVectors(**base).attribute(_mlp(seed=1), checkpoint=tmp_path / "ck")
    with pytest.raises(ValueError, match="other labels than this run's"):
        DeepSupportVectors(**base).attribute(
            _mlp(), labels=torch.tensor([2, 2, 1, 1, 0, 0]), checkpoint=tmp_path / "ck"
        )
    # more steps than the checkpoint is allowed: the run goes on
    more = DeepSupportVectors(**{**base, "steps": 5}).attribute(_mlp(), checkpoint=tmp_path / "ck")
    assert more.settings["resumed_from_step"] == 3 and len(more.history["total"]) == 5


class _Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        self.head = nn.Linear(8, 3)

    def forward(self, x, temperature):
        return self.head(self.body(x)) / temperature


def test_resume_refuses_other_weights_outside_the_scope_and_other_forward_args(tmp_path):
    """The checkpoint's model digest covered only the scope's parameters: a run with another
    first layer (scope: the last layer), or with other additional_forward_args, resumed from it
    and mixed two models."""
    settings = dict(n_per_class=1, steps=6, progress=False, seed=0, param_names=["head.weight", "head.bias"])
    torch.manual_seed(0)
    model = _Scaled()
    ck = tmp_path / "run.npz"
    DeepSupportVectors(**settings).attribute(
        model, checkpoint=ck, callback=_stop_at(3), additional_forward_args=(1.0,), input_shape=(4,)
    )
    with pytest.raises(ValueError, match="other additional_forward_args"):
        DeepSupportVectors(**settings).attribute(
            model, checkpoint=ck, additional_forward_args=(5.0,), input_shape=(4,)
        )
    other = _Scaled()
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        other.body[0].weight.mul_(3.0)  # outside the scope
    with pytest.raises(ValueError, match="other model weights or buffers"):
        DeepSupportVectors(**settings).attribute(
            other, checkpoint=ck, additional_forward_args=(1.0,), input_shape=(4,)
        )
    resumed = DeepSupportVectors(**settings).attribute(
        model, checkpoint=ck, additional_forward_args=(1.0,), input_shape=(4,)
    )
    assert resumed.settings["resumed_from_step"] == 3


def test_a_failing_callback_keeps_the_steps_done(tmp_path):
    """A callback raising (a logger's network error) lost every step done: the checkpoint was
    written only every checkpoint_every steps or at the end."""
    settings = SETTINGS["adam_exp"]
    model = _mlp()
    full = DeepSupportVectors(**settings).attribute(model)
    ck = tmp_path / "run.npz"
    with pytest.raises(RuntimeError) as info:
        DeepSupportVectors(**settings).attribute(model, checkpoint=ck, callback=_stop_at(8, RuntimeError))
    assert any("the state after it is in checkpoint" in note for note in info.value.__notes__)
    resumed = DeepSupportVectors(**settings).attribute(model, checkpoint=ck)
    assert resumed.settings["resumed_from_step"] == 8
    _same(resumed, full)
    with pytest.raises(RuntimeError) as info:
        DeepSupportVectors(**settings).attribute(model, callback=_stop_at(2, RuntimeError))
    assert any("pass checkpoint=" in note for note in info.value.__notes__)


def test_the_fingerprint_describes_forward_args_and_any_dtype():
    """Forward args were fingerprinted by repr: two equal config objects (a memory address in
    their repr) never matched, and tensors inside a dict were summarised ('tensor(...)') so other
    values matched; a bfloat16 buffer crashed the digest; an older checkpoint got a false
    'other model' message."""
    from pathlib import Path

    from kktexplain._checkpoint import check_fingerprint, fingerprint

    class Config:
        scale = 2.0

    def fp(args, state=()):
        return fingerprint({}, {}, torch.zeros(2), torch.zeros(2, 3), {"w": torch.ones(2)}, list(state), args)

    assert fp((Config(),))["forward_args"] == fp((Config(),))["forward_args"]
    a = fp(({"t": torch.zeros(1000)},))
    b = fp(({"t": torch.cat([torch.zeros(999), torch.ones(1)])},))
    assert a["forward_args"] != b["forward_args"]
    fp((), [torch.ones(3, dtype=torch.bfloat16)])  # no crash
    old = dict(a)
    old.pop("fingerprint_version")
    with pytest.raises(ValueError, match="written by another kktexplain version"):
        check_fingerprint(old, a, Path("ck.npz"))


def test_a_pickled_file_as_checkpoint_is_not_advised_to_unpickle(tmp_path):
    """numpy's 'allow_pickle' advice reached the user for a file kktexplain never pickles."""
    ck = tmp_path / "ck.npz"
    ck.write_bytes(b"hello world" * 100)  # neither a zip nor an .npy: numpy reads it as a pickle
    with pytest.raises(
        ValueError, match=r"not a kktexplain file \(it holds pickled objects\); delete it"
    ) as info:
        DeepSupportVectors(**SETTINGS["adam_exp"]).attribute(_mlp(), checkpoint=ck)
    assert "allow_pickle" not in str(info.value)


def test_the_fingerprint_tells_numpy_and_dtype_args_apart():
    """Described by their type alone, np.ones(3) and np.full(3, 2.0) (or two dtypes) matched."""
    from kktexplain._checkpoint import describe_value

    assert describe_value(np.ones(3)) != describe_value(np.full(3, 2.0))
    assert describe_value(np.int64(3)) != describe_value(np.int64(4))
    assert describe_value(torch.float32) != describe_value(torch.float64)
    assert describe_value(np.ones(3)) == describe_value(np.ones(3))
