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
    CountSketch,
    FunctionalModel,
    KKTObjective,
    cross_entropy,
    dual_feasibility,
    input_norm,
    iter_per_sample_grads,
    primal_feasibility,
    primal_margin,
    solve_multipliers,
    stationarity,
    stationarity_per_layer,
    total_variation,
    weighted_loss_grad,
)

__all__ = ["DeepSupportVectors"]

_INITS = ("noise", "real", "other")
_DUALS = ("prune", "clamp", "exp")
_OPTIMIZERS = ("adam", "sgd")


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
    steps : int, optional
        Optimisation steps. Default: 60 for ``init="real"``, 300 otherwise.
    lr : float, optional
        Step size for the inputs (in the model's input units). Default: 0.01 for
        ``init="real"``, 0.05 otherwise.
    lr_lambda : float, default=0.05
        Step size for the multipliers' parameter ``rho`` (``lambda = s * f(rho)``).
    optimizer : {"adam", "sgd"}, default="adam"
        Optimiser of inputs and multipliers (the paper does not name one). Adam's steps have a
        size of about ``lr`` per coordinate whatever the gradient's size, so they do not shrink
        as the residual does; ``"sgd"`` (plain gradient descent) takes steps proportional to the
        gradient, which settles where it vanishes (the linear-SVM check uses it).
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
    projection_dim : int, optional
        Selection only: sketch the per-sample gradients to this many dimensions with a
        :class:`~kktexplain.kkt.CountSketch` when the model has more parameters. ``None`` keeps
        them exact (fine up to a few thousand parameters times samples).
    chunk_size : int, default=256
        Selection only: samples per per-sample-gradient chunk (bounds memory).
    maximize_sum : bool, default=False
        Selection only: among the multipliers of least stationarity residual take those of
        largest sum (the max-margin dual optimum; recovers an SVM's ``dual_coef_``). Solves a
        dense linear program: small problems only.
    ridge : float, optional
        Selection only: among multipliers that fit stationarity about equally well take the
        ones of least norm, by adding ``ridge * ||G||_2^2 * ||λ||^2`` to the least-squares
        problem (scale-free; solved by projected FISTA). With more samples than gradient
        dimensions the exact solvers return a sparse vertex of the solution set, whose zeros
        on interchangeable samples are arbitrary; ``1e-3`` spreads λ over them. ``None``: the
        exact (sparse) solution.
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
        steps: int | None = None,
        lr: float | None = None,
        lr_lambda: float = 0.05,
        optimizer: str = "adam",
        dual: str = "exp",
        lambda_scale: float | str = "auto",
        lambda_max: float | None = None,
        param_names: Sequence[str] | None = None,
        input_range: tuple[float, float] | None = None,
        init_scale: float = 1.0,
        projection_dim: int | None = None,
        chunk_size: int = 256,
        maximize_sum: bool = False,
        ridge: float | None = None,
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
        self.optimizer = optimizer
        self.dual = dual
        self.lambda_scale = lambda_scale
        self.lambda_max = lambda_max
        self.param_names = param_names
        self.input_range = input_range
        self.init_scale = init_scale
        self.projection_dim = projection_dim
        self.chunk_size = chunk_size
        self.maximize_sum = maximize_sum
        self.ridge = ridge
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
                "optimizer",
                "dual",
                "lambda_scale",
                "lambda_max",
                "param_names",
                "input_range",
                "init_scale",
                "projection_dim",
                "chunk_size",
                "maximize_sum",
                "ridge",
                "seed",
                "progress",
            )
        }

    def _validate(self) -> tuple[KKTObjective, Augmentation | None]:
        check_positive("n_per_class", self.n_per_class, integer=True)
        check_choice("init", self.init, _INITS)
        check_choice("dual", self.dual, _DUALS)
        check_choice("optimizer", self.optimizer, _OPTIMIZERS)
        if self.steps is not None:
            check_positive("steps", self.steps, integer=True, allow_zero=True)
        if self.lr is not None:
            check_positive("lr", self.lr)
        check_positive("lr_lambda", self.lr_lambda, allow_zero=True)
        check_positive("init_scale", self.init_scale, allow_zero=True)
        check_positive("chunk_size", self.chunk_size, integer=True)
        if self.projection_dim is not None:
            check_positive("projection_dim", self.projection_dim, integer=True)
        if self.lambda_scale != "auto":
            check_positive("lambda_scale", self.lambda_scale)
        if self.lambda_max is not None:
            check_positive("lambda_max", self.lambda_max)
        if self.ridge is not None:
            check_positive("ridge", self.ridge)
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
        candidates: Tensor | None = None,
        init_data: Any = None,
        input_shape: Sequence[int] | None = None,
        additional_forward_args: Any = None,
        reference: nn.Module | dict | None = None,
    ) -> DSVResult:
        """Synthesise the deep support vectors of ``model``, or score real samples by λ.

        Without ``candidates`` this is *synthesis*: inputs and multipliers are optimised under
        the DeepKKT objective. With ``candidates`` it is *selection*: the inputs are fixed to
        the given samples and their multipliers ``λ >= 0`` solve the stationarity condition
        ``min_λ ||θ* + Σ_i λ_i ∇θ L_i||²`` (bounded by ``lambda_max``), a non-negative least
        squares problem over per-sample gradients computed with ``torch.func.vmap`` in chunks.

        Parameters
        ----------
        model : nn.Module
            A trained classifier mapping ``(N, *input_shape)`` to logits ``(N, C)``. It is left
            exactly as found (parameters, ``requires_grad``, train/eval mode, hooks, ``.grad``);
            it is evaluated in eval mode.
        labels : Tensor of shape (N,) or (N, C), optional
            Hard or soft (probability rows) labels of the candidates. Default: ``n_per_class``
            of every class. Required with ``candidates``.
        candidates : Tensor of shape (N, *input_shape), optional
            Real samples to score (selection mode). May live on the CPU.
        init_data : Tensor, (Tensor, Tensor) or Dataset, optional
            Source of the initial inputs for ``init="real"`` or ``"other"``.
        input_shape : tuple of int, optional
            Shape of one input; inferred from ``model.input_shape``, a leading ``nn.Linear``
            or ``init_data`` when omitted.
        additional_forward_args : Any, optional
            Extra arguments passed to the model after the inputs (captum's convention).
        reference : nn.Module or dict of str to Tensor, optional
            Parameters ``theta_0`` of the same architecture, typically the initialisation the
            model was trained from. Stationarity then matches ``theta* - theta_0`` (the training
            displacement) instead of ``theta*``. Not in the paper; see the docs page on
            defaults for why it helps.

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
        try:
            shape = infer_input_shape(model, input_shape)
        except ValueError:
            if isinstance(candidates, Tensor):  # last resort: the data's own shape
                shape = tuple(candidates.shape[1:])
            elif init_data is not None:
                shape = tuple(_split_data(init_data)[0].shape[1:])
            else:
                raise
        device, dtype = model_device(model), model_dtype(model)
        with eval_mode(model):
            num_classes = infer_num_classes(model, shape, args)
            if labels is not None:
                labels = check_labels(labels, num_classes)
            fmodel = FunctionalModel(
                model,
                None if self.param_names is None else list(self.param_names),
                args,
                reference=reference,
            )
            inferred = {"input_shape": list(shape), "num_classes": num_classes}
            if candidates is not None:
                check_inputs("candidates", candidates, shape)
                if labels is None:
                    raise ValueError("selection needs labels: attribute(model, candidates=X, labels=y)")
                labels = check_labels(labels, num_classes, len(candidates))
                return self._select(fmodel, candidates, labels, objective, inferred)
            gen = torch.Generator().manual_seed(self.seed)
            x0, labels, indices = self._initial(shape, num_classes, labels, init_data, gen)
            labels = check_labels(labels, num_classes, len(x0))
            return self._synthesise(
                fmodel,
                x0.to(device, dtype),
                labels.to(device),
                objective,
                augmentation,
                indices,
                inferred,
            )

    def _select(
        self,
        fmodel: FunctionalModel,
        candidates: Tensor,
        labels: Tensor,
        objective: KKTObjective,
        inferred: dict,
    ) -> DSVResult:
        start = time.perf_counter()
        dtype = next(iter(fmodel.theta.values())).dtype
        candidates = candidates.to(dtype)
        p = fmodel.num_params
        sketch = None
        if self.projection_dim is not None and self.projection_dim < p:
            device = next(iter(fmodel.theta.values())).device
            sketch = CountSketch(p, self.projection_dim, seed=self.seed, device=device)
        target = torch.cat([v.flatten() for v in fmodel.target.values()])
        target = sketch(target[None])[0] if sketch is not None else target
        rows = []
        chunks = iter_per_sample_grads(
            fmodel, candidates, labels, self.chunk_size, objective.loss_fn(), sketch
        )
        total = -(-len(candidates) // self.chunk_size)
        for _, g in tqdm(
            chunks, total=total, desc="per-sample grads", disable=not self.progress, leave=False
        ):
            rows.append(g.detach().cpu())
        grads = torch.cat(rows)
        grad_seconds = time.perf_counter() - start
        lam, info = solve_multipliers(
            grads, target.cpu(), upper=self.lambda_max, maximize_sum=self.maximize_sum, ridge=self.ridge
        )
        lam = lam.to(dtype)
        kkt = self.residuals(
            fmodel, candidates, labels, lam, objective.loss_fn(), chunk_size=max(self.chunk_size, 256)
        )
        settings = {k: v for k, v in self.get_params().items() if k not in ("objective", "augmentation")}
        settings.update(
            inferred,
            objective=objective.to_dict(),
            mode="selection",
            param_names=fmodel.names,
            solver=info,
            sketch_dim=None if sketch is None else sketch.out_features,
            gradient_seconds=grad_seconds,
            seconds=time.perf_counter() - start,
        )
        return DSVResult(
            candidates.detach().cpu(),
            labels.cpu(),
            lam.cpu(),
            kkt,
            {},
            torch.ones(len(candidates), dtype=torch.bool),
            settings,
            torch.arange(len(candidates)),
        )

    def resolved_schedule(self) -> tuple[int, float]:
        """``(steps, lr)`` with ``None`` resolved by ``init``.

        Real initialisations get a short, gentle schedule (60 steps, lr 0.01) so the DSVs stay
        near the images they started from; noise and other-data initialisations need to travel
        further (300 steps, lr 0.05). See the docs page on defaults for the measurements.
        """
        real = self.init == "real"
        steps = self.steps if self.steps is not None else (60 if real else 300)
        lr = self.lr if self.lr is not None else (0.01 if real else 0.05)
        return steps, lr

    def _lambda_scale(self, fmodel: FunctionalModel, x: Tensor, y: Tensor, objective: KKTObjective) -> float:
        if self.lambda_scale != "auto":
            return float(self.lambda_scale)
        if objective.scale_free:
            return 1.0
        g, _ = weighted_loss_grad(
            fmodel,
            x,
            y,
            torch.ones(len(x), device=x.device, dtype=x.dtype),
            objective.loss_fn(),
            create_graph=False,
        )
        g_norm = math.sqrt(sum(v.pow(2).sum().item() for v in g.values()))
        t_norm = math.sqrt(sum(v.pow(2).sum().item() for v in fmodel.target.values()))
        return t_norm / max(g_norm, 1e-12)

    def _lambdas(self, rho: Tensor, scale: float) -> Tensor:
        lam = scale * (rho.exp() if self.dual == "exp" else rho)
        if self.lambda_max is not None:
            # rho is projected after every step, so this only removes rounding; the excess is
            # subtracted as a constant because clamp has a zero gradient *at* the bound, which
            # would freeze a multiplier that starts (or lands) exactly at lambda_max
            lam = lam - (lam - self.lambda_max).clamp(min=0).detach()
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
        steps, lr = self.resolved_schedule()
        rho_max = None
        if self.lambda_max is not None:
            bound = self.lambda_max / scale
            rho_max = math.log(bound) if self.dual == "exp" else bound
        groups = [{"params": [x], "lr": lr}, {"params": [rho], "lr": self.lr_lambda}]
        opt = torch.optim.Adam(groups) if self.optimizer == "adam" else torch.optim.SGD(groups)
        history: dict[str, list[float]] = {}
        start = time.perf_counter()
        for _ in tqdm(range(steps), desc="DeepKKT", disable=not self.progress, leave=False):
            lam = self._lambdas(rho, scale) * active
            value = objective(fmodel, x, labels, lam, augmentation, aug_gen)
            opt.zero_grad(set_to_none=True)
            value.total.backward()
            x.grad[~active] = 0
            frozen = None if bool(active.all()) else x.detach()[~active].clone()
            opt.step()
            with torch.no_grad():
                if frozen is not None:
                    # a zero gradient does not stop Adam (its momentum carries on): put the
                    # pruned inputs back where they were frozen
                    x[~active] = frozen
                if self.dual == "clamp":
                    rho.clamp_(min=0)
                elif self.dual == "prune":
                    active &= rho > 0
                    rho[~active] = 0
                if rho_max is not None:
                    # project rho instead of relying on the clamp in _lambdas: a rho past the
                    # bound gets no gradient through that clamp and would stay at C for good
                    rho.clamp_(max=rho_max)
                if self.input_range is not None:
                    x.clamp_(*self.input_range)
            self._record(history, value, labels, lam, active)
        lam = (self._lambdas(rho, scale) * active).detach()
        kkt = self.residuals(fmodel, x.detach(), labels, lam, objective.loss_fn())
        settings = {k: v for k, v in self.get_params().items() if k not in ("objective", "augmentation")}
        settings.update(
            inferred,
            steps=steps,
            lr=lr,
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
    def residuals(
        fmodel: FunctionalModel,
        inputs: Tensor,
        labels: Tensor,
        lambdas: Tensor,
        loss_fn=None,
        chunk_size: int = 1024,
    ) -> KKTResiduals:
        """Every DeepKKT residual of given inputs, labels and multipliers (exact, chunked).

        Parameters
        ----------
        fmodel : FunctionalModel
        inputs : Tensor of shape (N, *input_shape)
            May live on the CPU; chunks go to the model's device.
        labels : Tensor of shape (N,) or (N, C)
        lambdas : Tensor of shape (N,)
        loss_fn : callable, optional
            Per-sample loss of the stationarity sum; cross-entropy when omitted.
        chunk_size : int, default=1024
            Samples per forward/backward, to bound memory.

        Returns
        -------
        KKTResiduals
            Per-sample tensors on the CPU.
        """
        loss_fn = cross_entropy if loss_fn is None else loss_fn
        device = next(iter(fmodel.theta.values())).device
        g: dict[str, Tensor] = {k: torch.zeros_like(v) for k, v in fmodel.target.items()}
        chunks = []
        for start in range(0, len(inputs), chunk_size):
            rows = slice(start, start + chunk_size)
            gc, logits = weighted_loss_grad(
                fmodel,
                inputs[rows].to(device),
                labels[rows].to(device),
                lambdas[rows].to(device),
                loss_fn,
                create_graph=False,
            )
            for k in g:
                g[k] += gc[k]
            chunks.append(logits.detach().cpu())
        logits = torch.cat(chunks)
        labels, lambdas = labels.cpu(), lambdas.cpu()
        theta = fmodel.target
        t_norm = math.sqrt(sum(v.pow(2).sum().item() for v in theta.values()))
        g_norm = math.sqrt(sum(v.pow(2).sum().item() for v in g.values()))
        stat = {
            "cosine": 1.0 - stationarity(theta, g, "cosine").item(),
            "rel_l1": stationarity(theta, g, "rel_l1").item(),
            "rel_l2": stationarity(theta, g, "rel_l2").item(),
            "l1": stationarity(theta, g, "l1").item(),
            "g_norm_ratio": g_norm / max(t_norm, 1e-12),
        }
        layer = 1.0 - stationarity_per_layer(theta, g, "cosine")
        y = labels if labels.ndim == 1 else labels.argmax(-1)
        inputs = inputs.detach().cpu()
        return KKTResiduals(
            margin=primal_margin(logits, labels),
            feasible=logits.argmax(-1) == y,
            primal_loss=primal_feasibility(logits, labels, "masked_ce"),
            entropy=_entropy(logits),
            dual_violation=dual_feasibility(lambdas),
            tv=total_variation(inputs),
            norm=input_norm(inputs),
            stationarity=stat,
            per_layer_cosine={k: v.item() for k, v in zip(theta, layer)},
        )
