"""Bad input through the public API: a ValueError or TypeError that names the parameter, model untouched.

One entry of ``CASES`` per kind of bad input: the explainer's settings (checked when
``attribute`` runs), ``attribute``'s arguments (model, labels, candidates, init data, input
shape, reference), checkpoints (bad paths, foreign and truncated files, resumed runs whose
settings differ from the checkpoint's), ``DSVResult.load``, the ``kktexplain.attr`` classes and
``report.write_html``. Every case runs on a model put in an unusual state (training mode, one
frozen parameter, a forward hook, a ``.grad``), and that state must survive the error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from conftest import assert_same_snapshot, model_snapshot
from torch import nn

from kktexplain import DeepSupportVectors, DSVResult
from kktexplain.attr import SupportExpansion, SupportVectorAttribution, SupportVectorInfluence
from kktexplain.report import write_html

N_CLASSES = 3


class Net(nn.Module):
    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.fc1, self.fc2 = nn.Linear(6, 8), nn.Linear(8, N_CLASSES)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


def _odd_state(model: nn.Module) -> nn.Module:
    """Training mode, a frozen bias, a forward hook and an existing ``.grad``: all must survive."""
    model.train()
    model.fc1.bias.requires_grad_(False)
    model.fc2.register_forward_hook(lambda m, i, o: None)
    model.fc2.weight.grad = torch.full_like(model.fc2.weight, 0.5)
    return model


def _data(n: int = 9):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 6, generator=g), torch.arange(n) % N_CLASSES


@dataclass
class Env:
    """What a case may use: the model (in its odd state), data, a folder and prepared files."""

    model: nn.Module
    tmp: object
    x: torch.Tensor
    y: torch.Tensor

    def dsv(self, **settings) -> DeepSupportVectors:
        return DeepSupportVectors(**{"n_per_class": 1, "steps": 2, "progress": False, **settings})

    def synth(self, **kwargs):
        return self.dsv().attribute(self.model, **kwargs)

    def select(self, **kwargs):
        kw = {"candidates": self.x, "labels": self.y, **kwargs}
        return DeepSupportVectors(progress=False).attribute(self.model, **kw)

    def checkpoint(self) -> str:
        """A checkpoint of a 2-step run with ``dsv()``'s settings (made on a copy of the model)."""
        path = self.tmp / "ck.npz"
        if not path.exists():
            import copy

            self.dsv().attribute(copy.deepcopy(self.model), checkpoint=path)
        return str(path)

    def resume(self, **settings):
        ck = self.checkpoint()
        return self.dsv(**settings).attribute(self.model, checkpoint=ck)

    def selection_result(self) -> DSVResult:
        import copy

        return DeepSupportVectors(progress=False).attribute(
            copy.deepcopy(self.model).eval(), candidates=self.x, labels=self.y
        )


@dataclass
class Case:
    call: Callable[[Env], object]
    exc: type[Exception]
    names: str  # the parameter the message must name (a regex, e.g. "checkpoint|path")


def _foreign(env: Env) -> str:
    np.savez(env.tmp / "foreign.npz", a=np.zeros(3))
    return str(env.tmp / "foreign.npz")


def _truncated(env: Env) -> str:
    path = env.tmp / "trunc.npz"
    env.selection_result().save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return str(path)


CASES: dict[str, Case] = {
    # ---- the explainer's settings (stored by the constructor, checked by attribute)
    "captum_habit_model_as_first_setting": Case(
        lambda e: DeepSupportVectors(e.model), TypeError, "n_per_class"
    ),
    "set_params_unknown_name": Case(
        lambda e: DeepSupportVectors().set_params(n_steps=3), ValueError, "n_steps"
    ),
    "n_per_class_zero": Case(lambda e: e.dsv(n_per_class=0).attribute(e.model), ValueError, "n_per_class"),
    "n_per_class_float": Case(lambda e: e.dsv(n_per_class=2.5).attribute(e.model), TypeError, "n_per_class"),
    "init_unknown": Case(lambda e: e.dsv(init="zeros").attribute(e.model), ValueError, "init"),
    "dual_unknown": Case(lambda e: e.dsv(dual="relu").attribute(e.model), ValueError, "dual"),
    "optimizer_unknown": Case(lambda e: e.dsv(optimizer="lbfgs").attribute(e.model), ValueError, "optimizer"),
    "steps_negative": Case(lambda e: e.dsv(steps=-1).attribute(e.model), ValueError, "steps"),
    "lr_zero": Case(lambda e: e.dsv(lr=0.0).attribute(e.model), ValueError, "lr"),
    "lr_lambda_string": Case(lambda e: e.dsv(lr_lambda="fast").attribute(e.model), TypeError, "lr_lambda"),
    "lambda_scale_word": Case(
        lambda e: e.dsv(lambda_scale="big").attribute(e.model), TypeError, "lambda_scale"
    ),
    "lambda_max_zero": Case(lambda e: e.dsv(lambda_max=0.0).attribute(e.model), ValueError, "lambda_max"),
    "lambda_max_bool": Case(lambda e: e.dsv(lambda_max=True).attribute(e.model), TypeError, "lambda_max"),
    "init_scale_negative": Case(
        lambda e: e.dsv(init_scale=-1.0).attribute(e.model), ValueError, "init_scale"
    ),
    "projection_dim_zero": Case(lambda e: e.select_with(projection_dim=0), ValueError, "projection_dim"),
    "chunk_size_float": Case(lambda e: e.select_with(chunk_size=1.5), TypeError, "chunk_size"),
    "ridge_negative": Case(lambda e: e.select_with(ridge=-1.0), ValueError, "ridge"),
    "batch_size_zero": Case(lambda e: e.dsv(batch_size=0).attribute(e.model), ValueError, "batch_size"),
    "classes_repeated": Case(lambda e: e.dsv(classes=[0, 0]).attribute(e.model), ValueError, "classes"),
    "classes_out_of_range": Case(lambda e: e.dsv(classes=[5]).attribute(e.model), ValueError, "classes"),
    "classes_with_labels": Case(
        lambda e: e.dsv(classes=[1]).attribute(e.model, labels=[0, 1]), ValueError, "classes"
    ),
    "input_range_reversed": Case(
        lambda e: e.dsv(input_range=(1.0, 0.0)).attribute(e.model), ValueError, "input_range"
    ),
    "objective_wrong_type": Case(lambda e: e.dsv(objective=3).attribute(e.model), TypeError, "objective"),
    "objective_unknown_preset": Case(
        lambda e: e.dsv(objective="paper_eq42").attribute(e.model), ValueError, "objective|preset"
    ),
    "augmentation_unknown": Case(
        lambda e: e.dsv(augmentation="strong").attribute(e.model), ValueError, "augmentation"
    ),
    "augmentation_wrong_type": Case(
        lambda e: e.dsv(augmentation=3).attribute(e.model), TypeError, "augmentation"
    ),
    "seed_negative": Case(lambda e: e.dsv(seed=-1).attribute(e.model), ValueError, "seed"),
    "seed_string": Case(lambda e: e.dsv(seed="zero").attribute(e.model), TypeError, "seed"),
    "param_names_unknown": Case(
        lambda e: e.dsv(param_names=["nope"]).attribute(e.model), ValueError, "param_names"
    ),
    "offload_dir_missing_folder": Case(
        lambda e: e.dsv(offload_dir="/nonexistent/kktexplain").attribute(e.model, candidates=e.x, labels=e.y),
        ValueError,
        "offload_dir",
    ),
    "offload_dir_for_synthesis": Case(
        lambda e: e.dsv(offload_dir=".").attribute(e.model), ValueError, "offload_dir"
    ),
    "param_names_other_word": Case(
        lambda e: e.dsv(param_names="all").attribute(e.model), ValueError, "param_names"
    ),
    # ---- attribute's arguments
    "model_not_a_module": Case(lambda e: e.dsv().attribute("net"), TypeError, "model"),
    "model_without_parameters": Case(lambda e: e.dsv().attribute(nn.Identity()), ValueError, "model"),
    "labels_out_of_range": Case(lambda e: e.synth(labels=[0, 7]), ValueError, "labels"),
    "labels_float": Case(lambda e: e.synth(labels=torch.tensor([0.0, 1.0])), TypeError, "labels"),
    "labels_empty": Case(lambda e: e.synth(labels=[]), ValueError, "labels"),
    "soft_labels_not_distributions": Case(
        lambda e: e.synth(labels=torch.full((2, N_CLASSES), 0.5)), ValueError, "labels"
    ),
    "labels_length_differs_from_candidates": Case(
        lambda e: e.select(labels=e.y[:4]), ValueError, "labels|candidates"
    ),
    "candidates_wrong_shape": Case(lambda e: e.select(candidates=e.x[:, :4]), ValueError, "candidates"),
    "candidates_integer": Case(
        lambda e: e.select(candidates=torch.zeros(9, 6, dtype=torch.long)), TypeError, "candidates"
    ),
    "candidates_nan": Case(
        lambda e: e.select(candidates=torch.where(e.x > 1, float("nan"), e.x)), ValueError, "candidates"
    ),
    "candidates_wrong_type": Case(lambda e: e.select(candidates={"x": e.x}), TypeError, "candidates"),
    "candidates_without_labels": Case(lambda e: e.select(labels=None), ValueError, "labels"),
    "init_real_without_init_data": Case(
        lambda e: e.dsv(init="real").attribute(e.model), ValueError, "init_data"
    ),
    "init_data_wrong_shape": Case(
        lambda e: e.dsv(init="real").attribute(e.model, init_data=(e.x[:, :3], e.y)), ValueError, "init_data"
    ),
    "input_shape_not_positive": Case(lambda e: e.synth(input_shape=(0,)), ValueError, "input_shape"),
    "input_shape_does_not_fit": Case(lambda e: e.synth(input_shape=(5,)), ValueError, "input_shape"),
    "reference_other_architecture": Case(
        lambda e: e.synth(reference={"w": torch.zeros(2)}), ValueError, "reference"
    ),
    "callback_not_callable": Case(lambda e: e.synth(callback=3), TypeError, "callback"),
    # ---- checkpoints
    "checkpoint_not_a_path": Case(lambda e: e.synth(checkpoint=123), TypeError, "checkpoint"),
    "checkpoint_is_a_directory": Case(lambda e: e.synth(checkpoint=e.tmp), ValueError, "checkpoint"),
    "checkpoint_folder_missing": Case(
        lambda e: e.synth(checkpoint=e.tmp / "no" / "such" / "ck"), ValueError, "checkpoint"
    ),
    "checkpoint_foreign_file": Case(lambda e: e.synth(checkpoint=_foreign(e)), ValueError, "checkpoint"),
    "checkpoint_truncated_file": Case(lambda e: e.synth(checkpoint=_truncated(e)), ValueError, "checkpoint"),
    "checkpoint_is_a_result_file": Case(
        lambda e: e.synth(checkpoint=str(e.selection_result().save(e.tmp / "res"))), ValueError, "checkpoint"
    ),
    "checkpoint_every_zero": Case(
        lambda e: e.synth(checkpoint=e.tmp / "c", checkpoint_every=0), ValueError, "checkpoint_every"
    ),
    "checkpoint_every_without_checkpoint": Case(
        lambda e: e.synth(checkpoint_every=2), ValueError, "checkpoint_every"
    ),
    "checkpoint_in_selection": Case(lambda e: e.select(checkpoint=e.tmp / "c"), ValueError, "checkpoint"),
    "resume_with_other_lr": Case(lambda e: e.resume(lr=0.02), ValueError, "lr"),
    "resume_with_other_seed": Case(lambda e: e.resume(seed=5), ValueError, "seed"),
    "resume_with_other_dual": Case(lambda e: e.resume(dual="clamp"), ValueError, "dual"),
    "resume_with_other_lambda_max": Case(lambda e: e.resume(lambda_max=2.0), ValueError, "lambda_max"),
    "resume_with_fewer_steps": Case(lambda e: e.resume(steps=1), ValueError, "steps"),
    "resume_with_other_model": Case(
        lambda e: (e.checkpoint(), e.dsv().attribute(_odd_state(Net(seed=1)), checkpoint=e.checkpoint())),
        ValueError,
        "run with other model weights or buffers than this run's: model must match",
    ),
    "resume_with_other_labels": Case(
        lambda e: e.dsv().attribute(e.model, labels=[2, 1, 0], checkpoint=e.checkpoint()),
        ValueError,
        "run with other labels than this run's: labels must match",
    ),
    # ---- DSVResult.load
    "load_truncated_file": Case(lambda e: DSVResult.load(_truncated(e)), ValueError, "path"),
    "load_foreign_file": Case(lambda e: DSVResult.load(_foreign(e)), ValueError, "path"),
    "load_a_checkpoint_as_a_result": Case(lambda e: DSVResult.load(e.checkpoint()), ValueError, "path"),
    "load_path_not_a_path": Case(lambda e: DSVResult.load(123), TypeError, "path"),
    # ---- kktexplain.attr
    "influence_support_not_a_result": Case(
        lambda e: SupportVectorInfluence(e.model, (e.x, e.y)), TypeError, "support"
    ),
    "influence_param_names_unknown": Case(
        lambda e: SupportVectorInfluence(e.model, e.selection_result(), param_names=["nope"]),
        ValueError,
        "param_names",
    ),
    "influence_k_negative": Case(  # k=0 gives empty results, as captum's TracInCP
        lambda e: SupportVectorInfluence(e.model, e.selection_result()).influence(e.x[:2], k=-1),
        ValueError,
        "k",
    ),
    "influence_half_precision_model": Case(
        lambda e: SupportVectorInfluence(Net().half(), e.selection_result()), TypeError, "model"
    ),
    "expansion_support_not_a_result": Case(
        lambda e: SupportExpansion(e.model, "dsv.npz"), TypeError, "support"
    ),
    "attribution_support_not_a_result": Case(
        lambda e: SupportVectorAttribution(e.model, e.x), TypeError, "support"
    ),
    # ---- report.write_html
    "report_without_results": Case(lambda e: write_html(e.tmp / "r.html"), ValueError, "synthesis|selection"),
    "report_synthesis_not_a_result": Case(
        lambda e: write_html(e.tmp / "r.html", synthesis=e.x), TypeError, "synthesis"
    ),
    "report_per_page_zero": Case(
        lambda e: write_html(e.tmp / "r.html", selection=e.selection_result(), per_page=0),
        ValueError,
        "per_page",
    ),
    "report_model_not_a_module": Case(
        lambda e: write_html(e.tmp / "r.html", selection=e.selection_result(), model="net"),
        TypeError,
        "model",
    ),
}


def _select_with(self: Env, **settings):
    return DeepSupportVectors(progress=False, **settings).attribute(
        self.model, candidates=self.x, labels=self.y
    )


Env.select_with = _select_with  # type: ignore[attr-defined]


def test_there_are_at_least_25_kinds():
    assert len(CASES) >= 25


@pytest.mark.parametrize("kind", list(CASES))
def test_bad_input_names_the_parameter_and_leaves_the_model(kind, tmp_path):
    case = CASES[kind]
    x, y = _data()
    env = Env(_odd_state(Net()), tmp_path, x, y)
    before = model_snapshot(env.model)
    with pytest.raises((ValueError, TypeError)) as info:
        case.call(env)
    assert type(info.value) is case.exc or isinstance(info.value, case.exc), (
        f"{kind}: {type(info.value).__name__} instead of {case.exc.__name__}: {info.value}"
    )
    assert re.search(rf"\b({case.names})\b", str(info.value)), f"{kind}: {info.value}"
    assert_same_snapshot(before, model_snapshot(env.model))
    assert env.model.training and not env.model.fc1.bias.requires_grad


@pytest.mark.filterwarnings("ignore:every λ")
def test_int_settings_raise_type_error_for_a_type_and_value_error_for_a_value():
    """Every int setting follows scikit-learn: a wrong type is a TypeError, a bad value a ValueError.

    ``explain``'s ``k`` raised ValueError for ``"3"`` where ``top_k_per_class``'s raised TypeError.
    """
    import numpy as np

    from kktexplain.attr import SupportExpansion, SupportVectorInfluence, explain

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    candidates, labels = torch.randn(6, 4), torch.arange(6) % 3
    support = DeepSupportVectors(multipliers="equal", progress=False).attribute(
        model, candidates=candidates, labels=labels
    )
    x = torch.randn(2, 4)
    for bad in ("3", 2.0, True):
        with pytest.raises(TypeError, match="k must be an int"):
            explain(support, model, x, k=bad)
        with pytest.raises(TypeError, match="k must be an int"):
            support.top_k_per_class(bad)
        with pytest.raises(TypeError, match="k must be an int"):
            SupportVectorInfluence(model, support).influence(x, k=bad)
        with pytest.raises(TypeError, match="chunk_size must be an int"):
            SupportExpansion(model, support, chunk_size=bad)
    with pytest.raises(ValueError, match="k must be > 0, got 0"):
        explain(support, model, x, k=0)
    with pytest.raises(ValueError, match="k must be >= 0, got -1"):
        SupportVectorInfluence(model, support).influence(x, k=-1)
    with pytest.raises(ValueError, match="projection_dim must be a positive int, 'auto' or None"):
        SupportExpansion(model, support, projection_dim="big")
    # numpy ints are ints
    assert explain(support, model, x[:1], k=np.int64(2), maps="none").supporting_indices.shape == (1, 2)
    expansion = SupportExpansion(model, support, chunk_size=np.int64(4), projection_dim=np.int32(8))
    assert expansion.chunk_size == 4 and type(expansion.chunk_size) is int


class _TwoArgs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x, temperature):
        return self.fc(x) / temperature


def test_a_forward_that_needs_more_arguments_says_how_to_pass_them():
    """A forward missing an argument raised Python's bare TypeError from the shape probe."""
    x, y = torch.randn(6, 4), torch.arange(6) % 3
    with pytest.raises(TypeError, match=r"pass its other arguments as additional_forward_args"):
        DeepSupportVectors(progress=False).attribute(_TwoArgs(), candidates=x, labels=y)


def test_candidates_pair_and_labels_together_are_refused():
    """candidates=(a, b) with labels= read b as labels and then dropped it silently."""
    model = nn.Sequential(nn.Linear(4, 3))
    a, b, y = torch.randn(6, 4), torch.randn(6, 4), torch.arange(6) % 3
    with pytest.raises(ValueError, match="candidates carries labels .* that differ from labels="):
        DeepSupportVectors(progress=False).attribute(model, candidates=(a, b), labels=y)


class _BuggyForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x) + len(3)  # a bug in the forward: TypeError, not an argument count


def test_a_forward_bug_raising_type_error_keeps_its_own_message():
    """Every TypeError of the shape probe was turned into 'pass additional_forward_args'."""
    x, y = torch.randn(6, 4), torch.arange(6) % 3
    with pytest.raises(TypeError, match="has no len") as info:
        DeepSupportVectors(progress=False).attribute(_BuggyForward(), candidates=x, labels=y)
    assert "additional_forward_args" not in str(info.value)
