"""DeepSupportVectors: the settings and dispatch to synthesis or selection.

The checks of the settings are in :mod:`kktexplain._settings_check`, the DeepKKT loop in
:mod:`kktexplain._synthesis`, selection in :mod:`kktexplain._select`, the residuals in
:mod:`kktexplain.kkt._residuals`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ._data import prepare_data
from ._initial import check_step_scale, initial_inputs
from ._model_info import (
    as_forward_args,
    check_token_ids,
    computable_model,
    infer_num_classes,
    input_dtype,
    model_device,
    model_dtype,
    resolve_input_shape,
    token_layer,
)
from ._model_state import eval_mode
from ._params import SettingsMixin
from ._result import DSVResult
from ._scope import resolve_param_names, scoped_model
from ._select import select
from ._settings_check import check_settings, normalized_settings
from ._synthesis import SynthesisConfig, synthesise
from ._validation import (
    check_inputs,
    check_labels,
    check_model,
    check_offload_dir,
    check_run_options,
)
from .kkt import Augmentation, KKTObjective, kkt_residuals

__all__ = ["DeepSupportVectors"]


class DeepSupportVectors(SettingsMixin):
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
        A preset name (``"default"``, ``"paper_eq9"``, ``"paper_alg1"``, ``"per_tensor"``) or an
        objective.
    augmentation : Augmentation, "default" or None, default="default"
        ``"default"`` is the paper's strengths (translate 0.125, crop 0.2, flip 0.5, cutout
        0.15, noise 0.01); ``None`` disables the augmented view.
    steps : int, optional
        Optimisation steps. Default: 60 for ``init="real"``, 300 otherwise.
    lr : float, optional
        Step size for the inputs (in the model's input units). Default: 0.01 for
        ``init="real"``, 0.05 otherwise. The defaults suit inputs of a spread near 1; a
        warning says when real or other-data starting inputs would barely move
        (``lr * steps`` under 5% of their standard deviation, e.g. pixels in 0-255) or are
        swamped by one step.
    lr_lambda : float, default=0.05
        Step size for the multipliers' parameter ``rho`` (``lambda = s * f(rho)``).
    lr_schedule : {"constant", "cosine"}, default="constant"
        Synthesis only. ``"constant"`` keeps ``lr`` and ``lr_lambda`` for every step (the
        paper gives no schedule). ``"cosine"`` lowers both along a half cosine to 0 at the last
        step (the closed form of :class:`torch.optim.lr_scheduler.CosineAnnealingLR`), so that
        the run settles instead of ending wherever Adam's constant-size steps left it: with the
        exact λ step the stationarity cosine of the last layer swings by about ±0.1 from step
        to step at a constant ``lr`` (docs: "Defaults vs the paper").
    lambda_solve_every : int, optional
        Synthesis only: every this many steps, and after the last one, replace λ by the
        exact solution of stationarity for the current inputs, the bounded non-negative least
        squares ``min_{0 <= λ <= lambda_max} ||theta* + sum_i λ_i grad L_i||`` that selection
        solves (per-sample gradients in the stationarity scope, exact up to 1 GiB, else a
        CountSketch of 8192 columns). Between solves λ takes gradient steps as without it.
        ``None``: gradient steps only, as in the paper. A run interrupted between two solves
        reports the λ of its last step. For a stationarity audit use ``lambda_solve_every=1``
        with ``param_names`` the last layer's weight and bias, ``lr_schedule="cosine"`` and
        ``steps=600``, as ``make demo`` does: 100 DSVs of the demo's model reach a mean cosine
        of 0.638 there over four seeds (0.508 with 300 constant steps), against 0.373 without
        the exact step and 0.314 with the defaults in the default scope (docs: "Defaults vs
        the paper").
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
    param_names : "free", sequence of str or None, default="free"
        Parameters that stationarity is measured on. ``"free"`` takes every parameter
        outside the modules whose scale the logits ignore (a convolution before a
        normalisation, a norm layer feeding another, found by
        :func:`kktexplain.kkt.scale_invariant_modules` on the candidates, the initialisation
        data or, failing both, seeded noise): every loss gradient is orthogonal to those
        parameters (Euler's theorem), so stationarity cannot hold on them, and the default
        objective's terms there are zero up to rounding and the normalisation's ``eps``. On a
        model without normalisation that is every parameter. Where some parameters are frozen
        (``requires_grad=False``) and others not, the frozen ones are left out too: they were
        not trained, so no stationarity holds on them. ``None``: every parameter, the
        paper's scope (and :mod:`kktexplain.generate`'s default). A sequence: those
        parameters, e.g. only the last layers of a fine-tuned model. The resolved names are in
        ``settings["resolved_param_names"]`` (docs: "Defaults vs the paper").
    input_range : tuple of float, optional
        ``(low, high)`` to clamp the inputs into after every step, e.g. a dataset's
        ``input_range``.
    init_scale : float, default=1.0
        Standard deviation of the noise initialisation.
    projection_dim : int, optional
        Selection only: sketch the per-sample gradients to this many dimensions with a
        :class:`~kktexplain.kkt.CountSketch` when the model has more parameters (``"kronecker"``
        rounds the width per layer, so it realises about this many). ``None`` keeps them exact
        (fine up to a few thousand parameters times samples). ``kkt`` always reports the exact,
        unsketched residual; ``settings["solver"]["residual"]`` is the sketched problem's.
    sketch : {"count", "kronecker"}, default="count"
        Selection only, with ``projection_dim``: the projection. ``"count"`` is a
        :class:`~kktexplain.kkt.CountSketch` of the materialised per-sample gradients (any
        model). ``"kronecker"`` is a :class:`~kktexplain.kkt.KroneckerSketch`: layer by layer,
        the gradients are projected without being formed (one forward and one backward per
        chunk, no ``vmap``); it needs every parameter in a Linear, Conv1d/2d, GroupNorm,
        LayerNorm or eval-mode BatchNorm layer. See docs/selection.md for its cost and quality.
    chunk_size : int, default=256
        Selection only: samples per chunk of every pass over the candidates (bounds memory:
        per-sample gradients and activations). On the CPU a smaller chunk can be faster, where
        a chunk's activations no longer fit in the cache (docs/explain.md, "Time").
    maximize_sum : bool, default=False
        Selection only: among the multipliers of least stationarity residual (to a slack of
        ``1e-6`` of the target per coordinate) take those of largest sum (the max-margin dual
        optimum; recovers an SVM's ``dual_coef_``). Solves a dense linear program: small
        problems only.
    ridge : float, optional
        Selection only: among multipliers that fit stationarity about equally well take the
        ones closest to equal, by adding ``ridge * ||G||_2^2 * ||λ - c||^2`` to the
        least-squares problem, ``c`` the best single multiplier for every sample (scale-free;
        solved by projected FISTA). With more samples than gradient dimensions the exact
        solvers return a sparse vertex of the solution set, whose zeros on interchangeable
        samples are arbitrary; the ridge spreads λ over them, at the cost of a larger residual.
        It lowered mislabel detection on a held-out problem (docs: Explaining a decision), so
        the default is ``None``: the exact (sparse) solution.
    multipliers : {"fit", "equal"}, default="fit"
        Selection only. ``"fit"`` solves the multipliers (the non-negative least squares above):
        the best completeness, but with more samples than gradient dimensions a sparse vertex
        whose zeros among interchangeable samples are arbitrary. ``"equal"`` gives every
        candidate the one multiplier ``c = argmin_{c >= 0} ||theta* + c sum_i grad L_i||``, the
        value every λ takes at a stationary point of weight-decay training (``1 / (n wd)``);
        one forward and one backward per chunk, no per-sample gradients, no solve. Its
        completeness is the readiness cosine (:func:`~kktexplain.kkt_readiness`); it ranks
        proponents for removal and self-influence better than the fitted vertex
        (docs: Explaining a decision). ``projection_dim``, ``sketch``, ``maximize_sum`` and
        ``ridge`` are not used with it; ``lambda_max`` caps ``c``.
    refit_dim : int, optional
        Selection only, with ``projection_dim``: a second stage. The sketch over every
        candidate picks the support (at most ``projection_dim`` samples); their multipliers are
        then solved again from a wider :class:`~kktexplain.kkt.CountSketch` of ``refit_dim``
        dimensions (exact gradients when it reaches the parameter count), computed for the
        support rows only. The multipliers then fit ``theta*`` rather than its narrow sketch:
        on all 60,000 Fashion-MNIST images with ``projection_dim=2048, sketch="kronecker"``,
        ``refit_dim=16384`` raised the exact stationarity cosine from 0.036 to 0.078 at 1.58×
        an epoch (docs/selection.md). ``None`` (default): one stage.
    offload_dir : str or PathLike, optional
        Selection only, with ``multipliers="fit"``: write the (sketched) per-sample gradients
        to a temporary file in this existing folder as they are computed, and solve by
        streaming over it, so that the process's memory does not grow with the number of
        candidates (the ``N x K`` float32 matrix, 4 bytes per entry, goes to disk; it is
        removed at the end). The solver's products are the same, summed block by block, so
        λ agrees with the in-memory solve to float32 rounding. The solve reads the file a few
        hundred times: about as fast as in memory while the file fits in the operating
        system's cache (measured in docs/selection.md), slower when it
        must come from the disk each time. One process only (not with
        ``torch.distributed``). ``None`` (default): in memory.
    batch_size : int, optional
        Synthesis only: candidates per chunk of a step. The stationarity residual depends on
        the sum ``sum_i lambda_i grad L_i`` over *all* candidates, so a chunked step first
        accumulates that sum chunk by chunk (no graph), takes the residual's gradient with
        respect to it, then backpropagates ``<that gradient, chunk's sum>`` chunk by chunk
        (with the double backward); the step is the full-batch step, up to the order of the
        floating-point sums, with the memory of one chunk. ``None`` or ``batch_size >= N``:
        one batch (bit for bit the unchunked run).
    classes : sequence of int, optional
        Synthesis only, without ``labels``: synthesise ``n_per_class`` candidates of these
        classes only (e.g. a few classes of a 1,000-class model). ``None``: every class.
    seed : None, int, numpy integer, numpy.random.Generator or torch.Generator, default=0
        Seeds initialisation, sampling and augmentation; the same int seed gives the same DSVs
        on the CPU. ``None`` draws a fresh seed from the operating system when
        :meth:`attribute` runs, and a Generator gives one draw from it; the int used is
        recorded in ``result.settings["seed"]``.
    progress : bool, default=True
        Show a progress bar.

    Notes
    -----
    The constructor only stores its arguments (scikit-learn's manners: :meth:`get_params`,
    :meth:`set_params`, ``sklearn.base.clone`` and the repr work); they are checked when
    :meth:`attribute` runs, and numpy scalars are accepted wherever a number is. One check is
    made at once: a model passed as the first argument (captum's habit) raises a
    ``TypeError`` that points to ``attribute(model)``, since it can never be a setting.

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
        lr_schedule: str = "constant",
        lambda_solve_every: int | None = None,
        optimizer: str = "adam",
        dual: str = "exp",
        lambda_scale: float | str = "auto",
        lambda_max: float | None = None,
        param_names: Sequence[str] | str | None = "free",
        input_range: tuple[float, float] | None = None,
        init_scale: float = 1.0,
        projection_dim: int | None = None,
        sketch: str = "count",
        chunk_size: int = 256,
        maximize_sum: bool = False,
        ridge: float | None = None,
        multipliers: str = "fit",
        refit_dim: int | None = None,
        offload_dir: str | os.PathLike | None = None,
        batch_size: int | None = None,
        classes: Sequence[int] | None = None,
        seed: Any = 0,
        progress: bool = True,
    ) -> None:
        if isinstance(n_per_class, nn.Module):
            raise TypeError(
                f"DeepSupportVectors takes settings, not the model (got a {type(n_per_class).__name__} "
                "as n_per_class): pass the model to attribute, as in "
                "DeepSupportVectors(n_per_class=10).attribute(model)"
            )
        self.n_per_class = n_per_class
        self.init = init
        self.objective = objective
        self.augmentation = augmentation
        self.steps = steps
        self.lr = lr
        self.lr_lambda = lr_lambda
        self.lr_schedule = lr_schedule
        self.lambda_solve_every = lambda_solve_every
        self.optimizer = optimizer
        self.dual = dual
        self.lambda_scale = lambda_scale
        self.lambda_max = lambda_max
        self.param_names = param_names
        self.input_range = input_range
        self.init_scale = init_scale
        self.projection_dim = projection_dim
        self.sketch = sketch
        self.chunk_size = chunk_size
        self.maximize_sum = maximize_sum
        self.ridge = ridge
        self.multipliers = multipliers
        self.refit_dim = refit_dim
        self.offload_dir = offload_dir
        self.batch_size = batch_size
        self.classes = classes
        self.seed = seed
        self.progress = progress

    # ------------------------------------------------------------------ settings
    def _check_setting(self, name: str, value: Any) -> None:
        """``set_params``' one early check: a model passed where a setting belongs."""
        if name == "n_per_class" and isinstance(value, nn.Module):
            raise TypeError("n_per_class cannot be a model: pass the model to attribute(model)")

    # ------------------------------------------------------------------ main verb
    @torch.inference_mode(False)  # autograd is needed, even inside inference_mode
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
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int | None = None,
        callback: Callable[[int, dict[str, float]], None] | None = None,
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
            it is evaluated in eval mode. Outputs that look like probabilities (a final
            Softmax) raise a warning. A float16/bfloat16 model is computed in float32 on a copy
            (``settings["compute_dtype"]``).
        labels : Tensor of shape (N,) or (N, C), optional
            Hard or soft (probability rows) labels of the candidates; a tensor, array or list.
            Default: ``n_per_class`` of every class (or of ``classes``). Required with
            ``candidates`` unless they carry labels. Must not be empty.
        candidates : Tensor, array, (inputs, labels), Dataset or DataLoader, optional
            Real samples ``(N, *input_shape)`` to score (selection mode). May live on the CPU.
            A numpy array is converted; a Dataset or DataLoader is read once, and its labels
            are used when ``labels`` is not given.
        init_data : Tensor, array, (inputs, labels), Dataset or DataLoader, optional
            Source of the initial inputs for ``init="real"`` or ``"other"``.
        input_shape : tuple of int, optional
            Shape of one input; inferred from ``model.input_shape``, a leading ``nn.Linear``
            or the data (``candidates``, ``init_data``) when omitted. A model that starts with
            ``nn.Flatten`` takes the data's shape if it has one, else the flat width with a
            warning that suggests ``input_shape``.
        additional_forward_args : Any, optional
            Extra arguments passed to the model after the inputs (captum's convention).
        reference : nn.Module or dict of str to Tensor, optional
            Parameters ``theta_0`` of the same architecture, typically the initialisation the
            model was trained from. Stationarity then matches ``theta* - theta_0`` (the training
            displacement) instead of ``theta*``. Not in the paper; see the docs page on
            defaults for why it helps.
        checkpoint : str or PathLike, optional
            Synthesis only. A file (``.npz`` appended if missing) to resume from if it exists and
            to save the run's state to: every ``checkpoint_every`` steps, on ``KeyboardInterrupt``,
            on a non-finite value, when ``callback`` raises, and at the end. Saves are atomic
            (temporary file, then :func:`os.replace`) and pickle-free. A resumed run equals an
            uninterrupted one, bit for bit on the CPU; it must have the same settings (except
            ``steps``, which may grow, and ``progress``), labels, initial inputs, model (every
            parameter and buffer) and ``additional_forward_args``, or a ``ValueError`` names the
            first that differs. A run resumed with more ``steps`` continues it; under
            ``lr_schedule="cosine"`` (whose length is ``steps``) or ``lambda_solve_every`` (which
            also solves after the last step) it differs from a run of those steps from the start.
        checkpoint_every : int, optional
            Steps between saves (needs ``checkpoint``). Default: only when stopped and at the end.
        callback : callable, optional
            Synthesis only. ``callback(step, row)`` after every step, with the 0-based step and
            its row of ``history``. A ``KeyboardInterrupt`` raised in it (or by Ctrl-C) stops
            the run like Ctrl-C does; another exception propagates, after the state is saved to
            ``checkpoint`` (a note on the exception says where).

        Returns
        -------
        DSVResult
            ``inputs (N, *input_shape)``, ``labels``, ``lambdas (N,)``, ``kkt``, ``history``.
            After a ``KeyboardInterrupt``, the state at the last completed step with
            ``settings["partial"] = True`` and ``settings["stopped"] = {"reason", "step"}``.

        Raises
        ------
        NonFiniteError
            A loss term or gradient became NaN or inf at some step: ``.step``, ``.term``, and
            ``.result`` (the partial result of the last good state, also in ``checkpoint``).
        """
        est = normalized_settings(self)
        objective, augmentation = check_settings(est)
        model = check_model(model)
        checkpoint_path = check_run_options(candidates, checkpoint, checkpoint_every, callback)
        offload = check_offload_dir(est.offload_dir, candidates is not None, est.multipliers)
        if est.classes is not None and (labels is not None or candidates is not None):
            raise ValueError("classes= picks the classes to synthesise; it cannot be combined with labels=")
        if candidates is None and augmentation is None and objective.clean == 0:
            raise ValueError(
                f"objective {objective.name!r} weighs only the augmented view (clean=0) and "
                "augmentation=None gives none: synthesis would have no objective; pass an "
                "augmentation (e.g. 'default') or an objective with clean > 0"
            )
        args = as_forward_args(additional_forward_args)
        tokens = token_layer(model)
        candidates, labels, data_x, data_y = prepare_data(candidates, labels, init_data, tokens)
        model, inferred = computable_model(model)
        data = candidates if candidates is not None else data_x
        shape = resolve_input_shape(model, input_shape, None if data is None else tuple(data.shape[1:]), args)
        device, dtype = model_device(model), model_dtype(model)
        with eval_mode(model), torch.enable_grad():  # synthesis differentiates, even under no_grad
            from_data = input_shape is None and data is not None and tuple(data.shape[1:]) == tuple(shape)
            source = ("candidates" if candidates is not None else "init_data") if from_data else None
            num_classes = infer_num_classes(model, shape, args, source)
            if labels is not None:
                labels = check_labels(labels, num_classes)
            if candidates is not None:
                check_inputs("candidates", candidates, shape, token_ids=tokens is not None)
                check_token_ids(model, "candidates", candidates)
            names, scope = resolve_param_names(model, est.param_names, data, shape, est.seed, args)
            inferred.update(scope)
            fits = data is not None and tuple(data.shape[1:]) == tuple(shape)  # else reported later
            probe = data if fits else torch.zeros(2, *shape, dtype=input_dtype(model))
            explicit = not isinstance(est.param_names, str | None)
            fmodel = scoped_model(model, names, args, reference, probe, explicit)
            inferred.update(
                input_shape=list(shape), num_classes=num_classes, displacement=reference is not None
            )
            if candidates is not None:
                if labels is None:
                    raise ValueError(
                        "selection needs labels: attribute(model, candidates=X, labels=y), or "
                        "candidates that carry them ((X, y), a Dataset or a DataLoader of pairs)"
                    )
                labels = check_labels(labels, num_classes, len(candidates))
                return select(
                    fmodel,
                    candidates,
                    labels,
                    objective,
                    projection_dim=est.projection_dim,
                    sketch=est.sketch,
                    chunk_size=est.chunk_size,
                    lambda_max=est.lambda_max,
                    maximize_sum=est.maximize_sum,
                    ridge=est.ridge,
                    seed=est.seed,
                    progress=est.progress,
                    settings=est._settings(inferred),
                    multipliers=est.multipliers,
                    refit_dim=est.refit_dim,
                    offload_dir=offload,
                )
            if est.classes is not None:
                bad = [c for c in est.classes if not 0 <= c < num_classes]
                if bad:
                    raise ValueError(
                        f"classes must lie in [0, {num_classes}) for a model with {num_classes} "
                        f"classes, got {bad}"
                    )
            gen = torch.Generator().manual_seed(est.seed)
            init_source = None if data_x is None else (data_x if data_y is None else (data_x, data_y))
            x0, labels, indices = initial_inputs(
                est.init,
                est.n_per_class,
                est.init_scale,
                shape,
                num_classes,
                labels,
                init_source,
                gen,
                classes=est.classes,
            )
            labels = check_labels(labels, num_classes, len(x0))
            if est.init != "noise":
                steps, lr = est.resolved_schedule()
                noise = 0.0 if augmentation is None else augmentation.noise
                check_step_scale(x0, lr, steps, est.optimizer, noise)
            return synthesise(
                fmodel,
                x0.to(device, dtype),
                labels.to(device),
                objective,
                augmentation,
                est._synthesis_config(),
                indices,
                est._settings(inferred),
                checkpoint=checkpoint_path,
                checkpoint_every=checkpoint_every,
                callback=callback,
            )

    def _settings(self, inferred: dict) -> dict[str, Any]:
        """What a result records: the settings (objective and augmentation resolved later)."""
        settings = {
            k: v for k, v in self.get_params(deep=False).items() if k not in ("objective", "augmentation")
        }
        settings.update(inferred)
        return settings

    def _synthesis_config(self) -> SynthesisConfig:
        steps, lr = self.resolved_schedule()
        return SynthesisConfig(
            dual=self.dual,
            lambda_scale=self.lambda_scale,
            lambda_max=self.lambda_max,
            steps=steps,
            lr=lr,
            lr_lambda=self.lr_lambda,
            optimizer=self.optimizer,
            input_range=None if self.input_range is None else tuple(self.input_range),
            seed=self.seed,
            progress=self.progress,
            batch_size=self.batch_size,
            lambda_solve_every=self.lambda_solve_every,
            lr_schedule=self.lr_schedule,
            chunk_size=self.chunk_size,
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

    residuals = staticmethod(kkt_residuals)
