"""The conventions a user brings from scikit-learn and captum, and the inputs they pass."""

import json
import warnings

import numpy as np
import pytest
import torch
from conftest import assert_same_snapshot, model_snapshot
from sklearn.base import clone
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from kktexplain import DeepSupportVectors, DSVResult, NonFiniteError
from kktexplain.models import MLP

FAST = {"steps": 3, "progress": False}


def _mlp(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return MLP((6,), 3, hidden=(8,)).to(dtype)


def _data(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.arange(n) % 3


# ------------------------------------------------------------------ scikit-learn manners
def test_get_params_set_params_clone_and_repr():
    est = DeepSupportVectors(n_per_class=3, lr=0.02, seed=5)
    params = est.get_params(deep=True)
    assert params["n_per_class"] == 3 and params["lr"] == 0.02 and params["seed"] == 5
    assert est.get_params(deep=False).keys() <= params.keys()
    assert est.set_params(steps=7, dual="clamp") is est
    assert est.steps == 7 and est.dual == "clamp"
    with pytest.raises(ValueError, match="invalid parameter 'n_steps'"):
        est.set_params(n_steps=3)
    twin = clone(est)
    assert twin is not est and twin.get_params(deep=False) == est.get_params(deep=False)
    text = repr(est)
    assert text.startswith("DeepSupportVectors(") and "n_per_class=3" in text and "steps=7" in text
    assert "lr_lambda" not in text  # defaults are not shown
    assert repr(DeepSupportVectors()) == "DeepSupportVectors()"


def test_set_params_reaches_a_nested_setting_by_name__param():
    from sklearn.preprocessing import StandardScaler

    inner = StandardScaler()  # any setting object with get_params/set_params
    est = DeepSupportVectors(augmentation=inner)
    assert est.get_params(deep=True)["augmentation__with_mean"] is True
    assert est.set_params(augmentation__with_mean=False) is est
    assert est.augmentation is inner and inner.with_mean is False
    with pytest.raises(ValueError, match="invalid parameter 'steps__x': steps has no set_params"):
        est.set_params(steps__x=1)
    with pytest.raises(ValueError, match="invalid parameter 'n_steps'"):
        est.set_params(n_steps__x=1)


def test_constructor_only_stores_and_attribute_validates():
    est = DeepSupportVectors(n_per_class=-1, dual="nope")  # no error yet (scikit-learn manners)
    with pytest.raises(ValueError, match="n_per_class must be > 0"):
        est.attribute(_mlp())


def test_seed_none_numpy_integer_and_generators():
    model = _mlp()
    auto = DeepSupportVectors(n_per_class=1, seed=None, **FAST).attribute(model)
    seed = auto.settings["seed"]
    assert isinstance(seed, int)
    again = DeepSupportVectors(n_per_class=1, seed=seed, **FAST).attribute(model)
    assert torch.equal(auto.inputs, again.inputs)  # the recorded seed reproduces the run
    a = DeepSupportVectors(n_per_class=1, seed=np.int64(4), **FAST).attribute(model)
    b = DeepSupportVectors(n_per_class=1, seed=4, **FAST).attribute(model)
    assert torch.equal(a.inputs, b.inputs) and a.settings["seed"] == 4
    for make in (lambda: np.random.default_rng(1), lambda: torch.Generator().manual_seed(1)):
        c = DeepSupportVectors(n_per_class=1, seed=make(), **FAST).attribute(model)
        d = DeepSupportVectors(n_per_class=1, seed=make(), **FAST).attribute(model)
        assert torch.equal(c.inputs, d.inputs) and isinstance(c.settings["seed"], int)
    with pytest.raises(TypeError, match="seed must be None, an int"):
        DeepSupportVectors(seed="0", **FAST).attribute(model)


def test_numpy_scalars_are_accepted_and_results_still_save(tmp_path):
    model = _mlp()
    out = DeepSupportVectors(
        n_per_class=np.int64(2),
        steps=np.int32(2),
        lr=np.float32(0.01),
        init_scale=np.float64(0.5),
        progress=False,
    ).attribute(model)
    assert out.inputs.shape == (6, 6) and len(out.history["total"]) == 2
    path = out.save(tmp_path / "r")
    assert json.dumps(DSVResult.load(path).settings)  # plain Python numbers in the settings


# ------------------------------------------------------------------ captum's habit
def test_model_as_first_argument_points_to_attribute():
    with pytest.raises(TypeError, match=r"attribute\(model\)"):
        DeepSupportVectors(_mlp())
    with pytest.raises(TypeError, match=r"attribute\(model\)"):
        DeepSupportVectors().set_params(n_per_class=_mlp())


# ------------------------------------------------------------------ inputs
class _ItemDataset(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def test_candidates_as_numpy_dataset_and_dataloader_give_the_same_lambdas():
    model = _mlp()
    x, y = _data()
    est = DeepSupportVectors(progress=False)
    ref = est.attribute(model, candidates=x, labels=y)
    forms = [
        {"candidates": x.numpy(), "labels": y.numpy()},
        {"candidates": (x.numpy(), y.numpy())},
        {"candidates": TensorDataset(x, y)},
        {"candidates": _ItemDataset(x, y)},
        {"candidates": DataLoader(TensorDataset(x, y), batch_size=5)},
        {"candidates": DataLoader(_ItemDataset(x, y), batch_size=5), "labels": list(y.tolist())},
    ]
    for kwargs in forms:
        out = est.attribute(model, **kwargs)
        assert torch.allclose(out.lambdas, ref.lambdas, atol=1e-6), kwargs


def test_init_data_as_numpy_and_dataloader():
    model = _mlp()
    x, y = _data(n=30)
    est = DeepSupportVectors(n_per_class=2, init="real", **FAST)
    ref = est.attribute(model, init_data=(x, y))
    for data in ((x.numpy(), y.numpy()), TensorDataset(x, y), DataLoader(TensorDataset(x, y), batch_size=7)):
        out = est.attribute(model, init_data=data)
        assert torch.equal(out.indices, ref.indices) and torch.allclose(out.inputs, ref.inputs)


def test_input_errors_name_the_real_cause():
    model = _mlp()
    x, y = _data()
    est = DeepSupportVectors(progress=False)
    loader = DataLoader([{"x": x[i]} for i in range(4)], batch_size=2)
    with pytest.raises(TypeError, match=r"candidates \(a DataLoader; batch 0\) is a dict"):
        est.attribute(model, candidates=loader, labels=y[:4])
    with pytest.raises(TypeError, match="floating-point inputs, got dtype torch.uint8"):
        est.attribute(model, candidates=np.zeros((4, 6), dtype=np.uint8), labels=y[:4])
    with pytest.raises(TypeError, match="candidates must be a Tensor, a numpy array"):
        est.attribute(model, candidates="train.npz", labels=y)
    with pytest.raises(ValueError, match="candidates has 12 inputs but 5 labels"):
        est.attribute(model, candidates=(x, y[:5]))
    with pytest.raises(ValueError, match=r"candidates holds NaN or inf values \(rows \[2\]"):
        bad = x.clone()
        bad[2, 0] = float("nan")
        est.attribute(model, candidates=bad, labels=y)
    with pytest.raises(ValueError, match="candidates must have shape"):
        est.attribute(model, candidates=torch.randn(4, 5), labels=y[:4])


def test_non_finite_rows_are_named_up_to_five():
    model, (x, y) = _mlp(), _data()
    est = DeepSupportVectors(progress=False)
    bad = x.clone()
    bad[[1, 3, 4, 6, 8, 9], 0] = float("inf")
    with pytest.raises(
        ValueError, match=r"candidates holds NaN or inf values \(rows \[1, 3, 4, 6, 8\], \.\.\.\)"
    ):
        est.attribute(model, candidates=bad, labels=y)
    with pytest.raises(ValueError, match=r"candidates holds NaN or inf values \(rows \[1, 3, 4, 6, 8\]\)"):
        est.attribute(model, candidates=bad[:9], labels=y[:9])


def test_empty_labels_raise_a_clear_error():
    model = _mlp()
    with pytest.raises(ValueError, match="labels is empty"):
        DeepSupportVectors(**FAST).attribute(model, labels=torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match="labels is empty"):
        DeepSupportVectors(**FAST).attribute(model, candidates=torch.randn(3, 6), labels=[])


def test_probability_outputs_are_detected():
    model = nn.Sequential(_mlp(), nn.Softmax(dim=1))
    with pytest.warns(UserWarning, match="look like probabilities"):
        DeepSupportVectors(n_per_class=1, **FAST).attribute(model, input_shape=(6,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # logits: no warning
        DeepSupportVectors(n_per_class=1, **FAST).attribute(_mlp())


def _flatten_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


def test_flatten_first_image_model_gets_an_input_shape_hint():
    model = _flatten_model()
    with pytest.warns(UserWarning, match=r"input_shape=\(1, 4, 4\)"):
        flat = DeepSupportVectors(n_per_class=1, **FAST).attribute(model)
    assert flat.inputs.shape == (3, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        images = DeepSupportVectors(n_per_class=1, **FAST).attribute(model, input_shape=(1, 4, 4))
        sel = DeepSupportVectors(progress=False).attribute(
            model, candidates=torch.randn(6, 1, 4, 4), labels=torch.arange(6) % 3
        )
    assert images.inputs.shape == (3, 1, 4, 4) and sel.inputs.shape == (6, 1, 4, 4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models_are_computed_in_float32_and_left_as_found(dtype):
    model = _mlp(dtype=dtype)
    before = model_snapshot(model)
    out = DeepSupportVectors(n_per_class=2, **FAST).attribute(model)
    assert torch.isfinite(out.inputs).all() and torch.isfinite(out.lambdas).all()
    assert out.inputs.dtype == torch.float32
    assert out.settings["model_dtype"] == str(dtype) and out.settings["compute_dtype"] == "torch.float32"
    x, y = _data()
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    assert torch.isfinite(sel.lambdas).all()
    assert_same_snapshot(before, model_snapshot(model))
    assert next(model.parameters()).dtype == dtype


def test_a_nan_stops_the_run_with_step_and_term():
    model = _mlp()
    with torch.no_grad():
        model[-1].weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="non-finite value .* in 'stationarity' at step 0") as info:
        DeepSupportVectors(n_per_class=1, **FAST).attribute(model)
    assert info.value.step == 0 and info.value.term == "stationarity"
    assert info.value.result.partial
    with pytest.raises(NonFiniteError, match="theta.*selection stopped"):
        DeepSupportVectors(progress=False).attribute(model, candidates=_data()[0], labels=_data()[1])
    with pytest.raises(NonFiniteError, match="lambda_scale"):
        DeepSupportVectors(n_per_class=1, objective="paper_alg1", **FAST).attribute(model)


# ------------------------------------------------------------------ scale in synthesis
def test_batch_size_at_least_n_is_bit_for_bit_the_unbatched_run():
    model = _mlp()
    settings = {"n_per_class": 2, "steps": 4, "progress": False, "seed": 3}
    ref = DeepSupportVectors(**settings).attribute(model)
    for batch_size in (6, 100):
        out = DeepSupportVectors(batch_size=batch_size, **settings).attribute(model)
        assert torch.equal(out.inputs, ref.inputs) and torch.equal(out.lambdas, ref.lambdas)
        assert out.history == ref.history


@pytest.mark.parametrize("objective", ["default", "paper_eq9", "paper_alg1"])
def test_batched_steps_accumulate_the_stationarity_sum_exactly(objective):
    model = _mlp(dtype=torch.float64)
    before = model_snapshot(model)
    settings = {"n_per_class": 3, "steps": 4, "progress": False, "seed": 2, "objective": objective}
    ref = DeepSupportVectors(**settings).attribute(model)
    out = DeepSupportVectors(batch_size=2, **settings).attribute(model)
    assert torch.allclose(out.inputs, ref.inputs, atol=1e-10)
    assert torch.allclose(out.lambdas, ref.lambdas, atol=1e-10)
    for k, v in ref.history.items():
        assert np.allclose(out.history[k], v, atol=1e-9), k
    assert_same_snapshot(before, model_snapshot(model))


def test_classes_synthesises_only_those_classes():
    model = _mlp()
    out = DeepSupportVectors(n_per_class=2, classes=[2, 0], **FAST).attribute(model)
    assert out.labels.tolist() == [2, 2, 0, 0]
    x, y = _data(n=30)
    real = DeepSupportVectors(n_per_class=2, init="real", classes=[1], **FAST).attribute(
        model, init_data=(x, y)
    )
    assert real.labels.tolist() == [1, 1] and (y[real.indices] == 1).all()
    with pytest.raises(ValueError, match=r"classes must lie in \[0, 3\)"):
        DeepSupportVectors(classes=[3], **FAST).attribute(model)
    with pytest.raises(ValueError, match="cannot be combined with labels"):
        DeepSupportVectors(classes=[1], **FAST).attribute(model, labels=torch.tensor([0]))


class _HeadFirst(nn.Module):
    """The output layer registered before the body it follows."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(16, 3)
        self.body = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.BatchNorm1d(16))

    def forward(self, x):
        return self.head(self.body(x))


def test_a_model_whose_head_is_registered_first_takes_the_datas_shape():
    """The first registered nn.Linear's width (16) was taken as the input shape over the data's
    (5,), and every forward failed; the data's shape is kept where the model runs on it."""
    torch.manual_seed(0)
    model = _HeadFirst().train()
    x, y = torch.randn(12, 5), torch.arange(12) % 3
    before = model_snapshot(model)
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    assert sel.inputs.shape == (12, 5) and torch.isfinite(sel.lambdas).all()
    assert_same_snapshot(before, model_snapshot(model))  # probes in eval mode: BatchNorm stats untouched
    with pytest.raises(ValueError, match="does not fit the model"):
        DeepSupportVectors(progress=False).attribute(model, candidates=torch.randn(12, 7), labels=y)


class _NaNOnSome(nn.Module):
    """Finite inputs, NaN logits on the rows whose first feature exceeds 2."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        scale = torch.where(x[:, :1] > 2, float("nan"), 1.0)  # through the parameters' gradient
        return self.fc(x) * scale


@pytest.mark.parametrize("kwargs", [{}, {"multipliers": "equal"}])
def test_selection_names_the_candidates_whose_logits_are_not_finite(kwargs):
    """It said 'check the model's parameters and the inputs' at 'step 0' of a selection."""
    torch.manual_seed(0)
    x, y = torch.randn(20, 4), torch.arange(20) % 3
    x[[5, 11], 0] = 3.0
    with pytest.raises(NonFiniteError, match=r"selection stopped; the model.s .* candidates rows \[5, 11\]"):
        DeepSupportVectors(progress=False, **kwargs).attribute(_NaNOnSome(), candidates=x, labels=y)


def test_a_nan_logit_row_is_not_feasible():
    """argmax of an all-NaN row is 0, so class-0 samples with NaN logits counted as feasible."""
    from kktexplain.kkt import FunctionalModel
    from kktexplain.kkt._residuals import residuals_from_sum

    model = nn.Sequential(nn.Linear(4, 3))
    fmodel = FunctionalModel(model)
    logits = torch.tensor([[float("nan")] * 3, [2.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    g = {k: torch.zeros_like(v) for k, v in fmodel.theta.items()}
    r = residuals_from_sum(fmodel, torch.randn(3, 4), torch.tensor([0, 0, 0]), torch.ones(3), g, logits)
    assert r.feasible.tolist() == [False, True, False]
