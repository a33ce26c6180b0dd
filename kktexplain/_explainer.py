"""DeepSupportVectors: the optimisation loop that drives :mod:`kktexplain.kkt`."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ._model_state import eval_mode
from ._result import DSVResult, KKTResiduals
from ._validation import (
    check_choice,
    check_inputs,
    check_labels,
    check_model,
    check_positive,
    infer_input_shape,
    infer_num_classes,
    model_device,
    model_dtype,
)
from .kkt import (
    Augmentation,
    FunctionalModel,
    KKTObjective,
    dual_feasibility,
    input_norm,
    primal_feasibility,
    primal_margin,
    stationarity,
    stationarity_per_layer,
    total_variation,
    weighted_loss_grad,
)

__all__ = ["DeepSupportVectors"]

_INITS = ("noise", "real", "other")
_DUALS = ("prune", "clamp", "exp")


def _entropy(logits: Tensor) -> Tensor:
    logp = torch.log_softmax(logits, -1)
    return -(logp.exp() * logp).sum(-1)


def _split_data(data: Any) -> tuple[Tensor, Tensor | None]:
    """(inputs, labels or None) from a tensor, a tuple, or a dataset."""
    if isinstance(data, Tensor):
        return data, None
    if isinstance(data, tuple | list) and len(data) == 2 and isinstance(data[0], Tensor):
        return data[0], torch.as_tensor(data[1])
    if isinstance(data, Dataset):
        tensors = getattr(data, "tensors", None)
        if tensors is not None and len(tensors) >= 2:
            return tensors[0], tensors[1]
        xs, ys = zip(*(data[i] for i in range(len(data))))
        return torch.stack(list(xs)), torch.as_tensor(ys)
    raise TypeError(
        f"init_data must be a Tensor, an (inputs, labels) tuple or a torch Dataset, got {type(data).__name__}"
    )


class DeepSupportVectors:
    """Find the deep support vectors (DSVs) of a trained classifier with the DeepKKT conditions.

    The explainer only holds settings (scikit-learn's manners); :meth:`attribute` does the work.
    DSVs are inputs ``x_i`` with multipliers ``lambda_i >= 0`` such that (Lee et al., 2024,
    Eq 6): every ``x_i`` is classified as its label (primal feasibility), ``lambda_i >= 0`` (dual
    feasibility), ``theta* = -sum_i lambda_i grad_theta L(Phi(x_i), y_i)`` (stationarity), and
    ``x_i`` lies on the data manifold (augmentation invariance, TV and norm priors).

    Parameters
    ----------
    n_per_class : int, default=10
        Candidates per class when ``labels`` are not given to :meth:`attribute`.
    init : {"noise", "real", "other"}, default="noise"
        ``"noise"`` draws ``x ~ N(0, init_scale^2 I)``; ``"real"`` takes ``n_per_class`` real
        samples of every class from ``init_data`` (the paper's k-shot rows); ``"other"`` takes
        random samples of ``init_data`` whatever their labels (another dataset, the paper's
        0-shot setting).
    objective : str or KKTObjective, default="default"
        A preset name (``"default"``, ``"paper_eq9"``, ``"paper_alg1"``) or an objective.
    augmentation : Augmentation, "default" or None, default="default"
        ``"default"`` is the paper's strengths (translate 0.125, crop 0.2, flip 0.5, cutout
        0.15, noise 0.01); ``None`` disables the augmented view.
    steps : int, default=300
        Optimisation steps.
    lr : float, default=0.01
        Adam step size for the inputs (in the model's input units).
    lr_lambda : float, default=0.05
        Adam step size for the multipliers' parameter ``rho`` (``lambda = s * f(rho)``).
    dual : {"exp", "clamp", "prune"}, default="exp"
        How ``lambda >= 0`` is kept. ``"prune"`` is the paper's: ``lambda = s * rho`` and a
        candidate whose multiplier turns negative is removed (its λ is set to zero and its
        input frozen). ``"clamp"`` projects ``rho`` back to ``>= 0`` after every step.
        ``"exp"`` parametrises ``lambda = s * exp(rho)``.
    lambda_scale : float or "auto", default="auto"
        ``s``. ``"auto"`` makes the initial ``||sum_i lambda_i grad L_i||`` equal to
        ``||theta*||`` (the paper leaves the scale open); irrelevant to a scale-free distance.
    lambda_max : float, optional
        Upper bound ``C`` on every λ, as the soft-margin SVM's box constraint.
    param_names : sequence of str, optional
        Parameters that stationarity is measured on (``None``: all). E.g. only the last layers
        of a fine-tuned model.
    input_range : tuple of float, optional
        ``(low, high)`` to clamp the inputs into after every step, e.g. a dataset's
        ``input_range``.
    init_scale : float, default=1.0
        Standard deviation of the noise initialisation.
    seed : int, default=0
        Seeds initialisation, sampling and augmentation; the same seed gives the same DSVs on
        the CPU.
    progress : bool, default=True
        Show a progress bar.

    Examples
    --------
    >>> import torch
    >>> from kktexplain import DeepSupportVectors
    >>> from kktexplain.models import MLP
    >>> model = MLP((4,), num_classes=3, hidden=(8,))
    >>> dsv = DeepSupportVectors(n_per_class=2, steps=5, progress=False).attribute(model)
    >>> dsv.inputs.shape, dsv.labels.shape, dsv.lambdas.shape
    (torch.Size([6, 4]), torch.Size([6]), torch.Size([6]))
    """

    def __init__(
        self,
        n_per_class: int = 10,
        init: str = "noise",
        objective: str | KKTObjective = "default",
        augmentation: Augmentation | str | None = "default",
        steps: int = 300,
        lr: float = 0.01,
        lr_lambda: float = 0.05,
        dual: str = "exp",
        lambda_scale: float | str = "auto",
        lambda_max: float | None = None,
        param_names: Sequence[str] | None = None,
        input_range: tuple[float, float] | None = None,
        init_scale: float = 1.0,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        self.n_per_class = n_per_class
        self.init = init
        self.objective = objective
        self.augmentation = augmentation
        self.steps = steps
        self.lr = lr
        self.lr_lambda = lr_lambda
        self.dual = dual
        self.lambda_scale = lambda_scale
        self.lambda_max = lambda_max
        self.param_names = param_names
        self.input_range = input_range
        self.init_scale = init_scale
        self.seed = seed
        self.progress = progress

    # ------------------------------------------------------------------ settings
    def get_params(self) -> dict[str, Any]:
        """The constructor's settings, as given."""
        return {
            k: getattr(self, k)
            for k in (
                "n_per_class",
                "init",
                "objective",
                "augmentation",
                "steps",
                "lr",
                "lr_lambda",
                "dual",
                "lambda_scale",
                "lambda_max",
                "param_names",
                "input_range",
                "init_scale",
                "seed",
                "progress",
            )
        }

    def _validate(self) -> tuple[KKTObjective, Augmentation | None]:
        check_positive("n_per_class", self.n_per_class, integer=True)
        check_choice("init", self.init, _INITS)
        check_choice("dual", self.dual, _DUALS)
        check_positive("steps", self.steps, integer=True, allow_zero=True)
        check_positive("lr", self.lr)
        check_positive("lr_lambda", self.lr_lambda, allow_zero=True)
        check_positive("init_scale", self.init_scale, allow_zero=True)
        if self.lambda_scale != "auto":
            check_positive("lambda_scale", self.lambda_scale)
        if self.lambda_max is not None:
            check_positive("lambda_max", self.lambda_max)
        if not isinstance(self.seed, int):
            raise TypeError(f"seed must be an int, got {type(self.seed).__name__}")
        if self.input_range is not None and (
            len(self.input_range) != 2 or self.input_range[0] >= self.input_range[1]
        ):
            raise ValueError(f"input_range must be (low, high) with low < high, got {self.input_range!r}")
        if isinstance(self.objective, str):
            objective = KKTObjective.from_preset(self.objective)
        elif isinstance(self.objective, KKTObjective):
            objective = self.objective
        else:
            raise TypeError(
                f"objective must be a preset name or a KKTObjective, got {type(self.objective).__name__}"
            )
        if isinstance(self.augmentation, str):
            check_choice("augmentation", self.augmentation, ("default",))
            augmentation: Augmentation | None = Augmentation()
        elif self.augmentation is None or isinstance(self.augmentation, Augmentation):
            augmentation = self.augmentation
        else:
            raise TypeError(
                "augmentation must be an Augmentation, 'default' or None, got "
                f"{type(self.augmentation).__name__}"
            )
        return objective, augmentation

    # ------------------------------------------------------------------ initialisation
    def _initial(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        labels: Tensor | None,
        init_data: Any,
        gen: torch.Generator,
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """(x0, labels, indices into init_data or None), on the CPU."""
        if self.init == "noise":
            if labels is None:
                labels = torch.arange(num_classes).repeat_interleave(self.n_per_class)
            x = torch.randn(len(labels), *input_shape, generator=gen) * self.init_scale
            return x, labels, None
        if init_data is None:
            raise ValueError(f"init={self.init!r} needs init_data (real or other samples)")
        data_x, data_y = _split_data(init_data)
        check_inputs("init_data", data_x, input_shape)
        if self.init == "other":
            n = len(labels) if labels is not None else self.n_per_class * num_classes
            if len(data_x) < n:
                raise ValueError(f"init_data has {len(data_x)} samples, {n} are needed")
            idx = torch.randperm(len(data_x), generator=gen)[:n]
            if labels is None:
                labels = torch.arange(num_classes).repeat_interleave(self.n_per_class)
            return data_x[idx].clone(), labels, idx
        # init == "real"
        if labels is not None:
            if len(labels) != len(data_x):
                raise ValueError(
                    "with init='real' and explicit labels, init_data must hold one input per "
                    f"label: got {len(data_x)} inputs for {len(labels)} labels"
                )
            return data_x.clone(), labels, torch.arange(len(data_x))
        if data_y is None:
            raise ValueError(
                "init='real' needs labelled init_data: an (inputs, labels) tuple "
                "or a dataset, or pass labels="
            )
        data_y = check_labels(data_y, num_classes, len(data_x), name="init_data labels")
        picks = []
        for c in range(num_classes):
            members = (data_y == c).nonzero().flatten()
            if len(members) < self.n_per_class:
                raise ValueError(
                    f"init_data has {len(members)} samples of class {c}, fewer than "
                    f"n_per_class={self.n_per_class}"
                )
            picks.append(members[torch.randperm(len(members), generator=gen)[: self.n_per_class]])
        idx = torch.cat(picks)
        return data_x[idx].clone(), data_y[idx], idx

    # ------------------------------------------------------------------ main verb
    def attribute(
        self,
        model: nn.Module,
        labels: Tensor | None = None,
        *,
        init_data: Any = None,
        input_shape: Sequence[int] | None = None,
        additional_forward_args: Any = None,
    ) -> DSVResult:
        """Synthesise the deep support vectors of ``model``.

        Parameters
        ----------
        model : nn.Module
            A trained classifier mapping ``(N, *input_shape)`` to logits ``(N, C)``. It is left
            exactly as found (parameters, ``requires_grad``, train/eval mode, hooks, ``.grad``);
            it is evaluated in eval mode.
        labels : Tensor of shape (N,) or (N, C), optional
            Hard or soft (probability rows) labels of the candidates. Default: ``n_per_class``
            of every class.
        init_data : Tensor, (Tensor, Tensor) or Dataset, optional
            Source of the initial inputs for ``init="real"`` or ``"other"``.
        input_shape : tuple of int, optional
            Shape of one input; inferred from ``model.input_shape``, a leading ``nn.Linear``
            or ``init_data`` when omitted.
        additional_forward_args : Any, optional
            Extra arguments passed to the model after the inputs (captum's convention).

        Returns
        -------
        DSVResult
            ``inputs (N, *input_shape)``, ``labels``, ``lambdas (N,)``, ``kkt``, ``history``.
        """
        objective, augmentation = self._validate()
        model = check_model(model)
        args = (
            ()
            if additional_forward_args is None
            else (
                tuple(additional_forward_args)
                if isinstance(additional_forward_args, tuple)
                else (additional_forward_args,)
            )
        )
        if input_shape is None and getattr(model, "input_shape", None) is None and init_data is not None:
            input_shape = tuple(_split_data(init_data)[0].shape[1:])
        shape = infer_input_shape(model, input_shape)
        device, dtype = model_device(model), model_dtype(model)
        with eval_mode(model):
            num_classes = infer_num_classes(model, shape, args)
            if labels is not None:
                labels = check_labels(labels, num_classes)
            gen = torch.Generator().manual_seed(self.seed)
            x0, labels, indices = self._initial(shape, num_classes, labels, init_data, gen)
            labels = check_labels(labels, num_classes, len(x0))
            fmodel = FunctionalModel(
                model, None if self.param_names is None else list(self.param_names), args
            )
            return self._synthesise(
                fmodel,
                x0.to(device, dtype),
                labels.to(device),
                objective,
                augmentation,
                indices,
                {"input_shape": list(shape), "num_classes": num_classes},
            )

    def _lambda_scale(self, fmodel: FunctionalModel, x: Tensor, y: Tensor, objective: KKTObjective) -> float:
        if self.lambda_scale != "auto":
            return float(self.lambda_scale)
        if objective.scale_free:
            return 1.0
        g, _ = weighted_loss_grad(
            fmodel, x, y, torch.ones(len(x), device=x.device, dtype=x.dtype), create_graph=False
        )
        g_norm = math.sqrt(sum(v.pow(2).sum().item() for v in g.values()))
        t_norm = math.sqrt(sum(v.pow(2).sum().item() for v in fmodel.theta.values()))
        return t_norm / max(g_norm, 1e-12)

    def _lambdas(self, rho: Tensor, scale: float) -> Tensor:
        lam = scale * (rho.exp() if self.dual == "exp" else rho)
        if self.lambda_max is not None:
            lam = lam.clamp(max=self.lambda_max)
        return lam

    def _synthesise(
        self,
        fmodel: FunctionalModel,
        x0: Tensor,
        labels: Tensor,
        objective: KKTObjective,
        augmentation: Augmentation | None,
        indices: Tensor | None,
        inferred: dict,
    ) -> DSVResult:
        device = x0.device
        aug_gen = torch.Generator(device).manual_seed(self.seed + 1)
        x = x0.clone().requires_grad_(True)
        scale = self._lambda_scale(fmodel, x0, labels, objective)
        rho0 = 0.0 if self.dual == "exp" else 1.0
        rho = torch.full((len(x0),), rho0, device=device, dtype=x0.dtype, requires_grad=True)
        active = torch.ones(len(x0), dtype=torch.bool, device=device)
        opt = torch.optim.Adam([{"params": [x], "lr": self.lr}, {"params": [rho], "lr": self.lr_lambda}])
        history: dict[str, list[float]] = {}
        start = time.perf_counter()
        for _ in tqdm(range(self.steps), desc="DeepKKT", disable=not self.progress, leave=False):
            lam = self._lambdas(rho, scale) * active
            value = objective(fmodel, x, labels, lam, augmentation, aug_gen)
            opt.zero_grad(set_to_none=True)
            value.total.backward()
            x.grad[~active] = 0
            opt.step()
            with torch.no_grad():
                if self.dual == "clamp":
                    rho.clamp_(min=0)
                elif self.dual == "prune":
                    active &= rho > 0
                    rho[~active] = 0
                if self.input_range is not None:
                    x.clamp_(*self.input_range)
            self._record(history, value, labels, lam, active)
        lam = (self._lambdas(rho, scale) * active).detach()
        kkt = self.residuals(fmodel, x.detach(), labels, lam)
        settings = {k: v for k, v in self.get_params().items() if k not in ("objective", "augmentation")}
        settings.update(
            inferred,
            objective=objective.to_dict(),
            lambda_scale_value=scale,
            augmentation=None if augmentation is None else vars(augmentation),
            seconds=time.perf_counter() - start,
            mode="synthesis",
            param_names=fmodel.names,
        )
        return DSVResult(
            x.detach().cpu(), labels.cpu(), lam.cpu(), kkt, history, active.cpu(), settings, indices
        )

    @staticmethod
    def _record(history: dict[str, list[float]], value, labels: Tensor, lam: Tensor, active: Tensor) -> None:
        y = labels if labels.ndim == 1 else labels.argmax(-1)
        row = dict(value.terms)
        row["entropy"] = _entropy(value.logits).mean().item()
        row["feasibility"] = (value.logits.argmax(-1) == y).float().mean().item()
        if value.augmented_logits is not None:
            row["feasibility_aug"] = (value.augmented_logits.argmax(-1) == y).float().mean().item()
        row["lambda_mean"] = lam.detach().mean().item()
        row["n_active"] = float(active.sum().item())
        for k, v in row.items():
            history.setdefault(k, []).append(v)

    @staticmethod
    def residuals(fmodel: FunctionalModel, inputs: Tensor, labels: Tensor, lambdas: Tensor) -> KKTResiduals:
        """Every DeepKKT residual of given inputs, labels and multipliers.

        Parameters
        ----------
        fmodel : FunctionalModel
        inputs : Tensor of shape (N, *input_shape)
        labels : Tensor of shape (N,) or (N, C)
        lambdas : Tensor of shape (N,)

        Returns
        -------
        KKTResiduals
            Per-sample tensors on the CPU.
        """
        g, logits = weighted_loss_grad(fmodel, inputs, labels, lambdas, create_graph=False)
        logits = logits.detach()
        theta = fmodel.theta
        neg = {k: -v for k, v in g.items()}  # -sum lambda grad L, the stationarity estimate
        t_norm = math.sqrt(sum(v.pow(2).sum().item() for v in theta.values()))
        n_norm = math.sqrt(sum(v.pow(2).sum().item() for v in neg.values()))
        stat = {
            "cosine": 1.0 - stationarity(theta, g, "cosine").item(),
            "rel_l1": stationarity(theta, g, "rel_l1").item(),
            "rel_l2": stationarity(theta, g, "rel_l2").item(),
            "l1": stationarity(theta, g, "l1").item(),
            "g_norm_ratio": n_norm / max(t_norm, 1e-12),
        }
        layer = 1.0 - stationarity_per_layer(theta, g, "cosine")
        y = labels if labels.ndim == 1 else labels.argmax(-1)
        with torch.no_grad():
            return KKTResiduals(
                margin=primal_margin(logits, labels).cpu(),
                feasible=(logits.argmax(-1) == y).cpu(),
                primal_loss=primal_feasibility(logits, labels, "masked_ce").cpu(),
                entropy=_entropy(logits).cpu(),
                dual_violation=dual_feasibility(lambdas).cpu(),
                tv=total_variation(inputs).cpu(),
                norm=input_norm(inputs).cpu(),
                stationarity=stat,
                per_layer_cosine={k: v.item() for k, v in zip(theta, layer)},
            )
