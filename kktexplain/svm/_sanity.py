"""The linear-SVM sanity check: DeepKKT must recover what ``SVC(kernel="linear")`` knows.

For a binary linear SVM ``f(x) = w.x + b`` trained on ``(X, y)`` with box constraint ``C``,
libsvm's dual solution satisfies stationarity ``w = sum_i alpha_i y_i x_i`` with
``0 <= alpha_i <= C`` and ``sum_i alpha_i y_i = 0`` (the bias is not regularised). We build the
same model in torch (two logits ``(-f/2, f/2)``, so the multiclass margin is ``y f``), run our
selection with the hinge loss over the training set, and compare.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import f1_score, precision_score, recall_score
from sklearn.svm import SVC
from torch import Tensor

from .._explainer import DeepSupportVectors
from .._result import DSVResult
from .._validation import check_positive
from ..kkt import KKTObjective
from ._linear import LinearSVMModel, fit_linear_svm_torch
from ._start import synthesis_init, synthesis_step_sizes
from ._svc_kkt import dual_term_norms, svc_advice, svc_kkt_diagnostics

__all__ = [
    "SanityResult",
    "sanity_check",
]


@dataclass
class SanityResult:
    """How well DeepKKT selection and synthesis recover a linear SVM.

    Attributes
    ----------
    precision, recall, f1 : float
        Of our support set against ``svc.support_``. Ours: the points whose term
        ``lambda_i ||[x_i, 1]||`` in ``[w, b]`` exceeds ``1e-6`` of the largest term (ours or
        the SVC's); relative, because multipliers scale as ``1 / ||x||^2`` with the units of
        the features and need not reach ``C``.
    pearson, spearman : float
        Correlation of our λ with the SVC's ``|dual_coef_|`` over every training point
        (zeros included). Where one of them is constant (e.g. every multiplier at ``C``, as
        for features in small units) the correlation is undefined: 1.0 if both agree to
        ``1e-6`` of the largest multiplier everywhere, else 0.0.
    stationarity_residual : float
        ``||w - sum_i lambda_i y_i x_i|| / ||w||`` of our λ.
    svc_identity_error : float
        ``max |dual_coef_ @ support_vectors_ - coef_|``: the identity the comparison relies on.
    margin_deviation : float
        Mean ``|w.x + b| - 1`` of the synthesised DSVs (0 = exactly on the margin).
    margin_abs_deviation : float
        Mean ``| |w.x + b| - 1 |`` of the synthesised DSVs.
    synth_feasibility : float
        Fraction of synthesised DSVs on their label's side.
    synth_active_fraction : float
        Fraction of synthesised DSVs with ``y f(x) < 1``: only these have a non-zero hinge
        gradient and can contribute to stationarity.
    synth_stationarity_residual : float
        ``||w - sum_i lambda_i y_i x_i|| / ||w||`` over the active synthesised DSVs. Read it with
        the margin deviation: DSVs that all sit just beyond the margin give a small deviation
        and a residual of 1 (they explain nothing).
    n_samples, n_support_svc, n_support_ours : int
    C : float
    weights : str
    weights_gap : float
        ``||[w, b] - [w, b]_SVC|| / ||[w, b]_SVC||`` of the model the selection ran on: 0 with
        ``weights="svc"`` (up to the rounding of float32 features); with ``"torch"``, how far
        the torch fit is from SVC's optimum (the diagnosis names it when the support sets
        differ).
    selection, synthesis : DSVResult
    """

    precision: float
    recall: float
    f1: float
    pearson: float
    spearman: float
    stationarity_residual: float
    svc_identity_error: float
    margin_deviation: float
    margin_abs_deviation: float
    synth_feasibility: float
    synth_active_fraction: float
    synth_stationarity_residual: float
    n_samples: int
    n_support_svc: int
    n_support_ours: int
    C: float
    weights: str
    synth_bias_residual: float = float("nan")
    svc_kkt_violation: float = float("nan")
    svc_margin_violation: float = float("nan")
    svc_equality_violation: float = float("nan")
    svc_converged: bool = True
    svc_n_free: int = 0
    svc_free_rank: int = 0
    svc_dual_unique: bool = True
    feature_scale_ratio: float = float("nan")
    weights_gap: float = 0.0
    diagnosis: str = ""
    synth_lr: float = float("nan")
    synth_lr_lambda: float = float("nan")
    synth_init: str = "boundary"
    selection: DSVResult | None = field(default=None, repr=False)
    synthesis: DSVResult | None = field(default=None, repr=False)
    model: LinearSVMModel | None = field(default=None, repr=False)
    svc: SVC | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        """The scalar fields, strict JSON: NaN and inf (e.g. the synthesis fields when
        ``n_synthetic=0``) become ``None``."""
        skip = ("selection", "synthesis", "model", "svc")

        def plain(v):
            return None if isinstance(v, float) and not math.isfinite(v) else v

        return {k: plain(v) for k, v in asdict(self).items() if k not in skip}


def _stationarity_residual(w: np.ndarray, lam: np.ndarray, ysign: np.ndarray, X: np.ndarray) -> float:
    """``||w - sum_i lam_i y_i x_i|| / ||w||``."""
    return float(np.linalg.norm(w - (lam * ysign) @ X) / np.linalg.norm(w))


def _binary(X, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if hasattr(X, "toarray") and not isinstance(X, np.ndarray | Tensor):  # scipy sparse
        raise TypeError(f"X must be a dense array or tensor, got {type(X).__name__}: pass X.toarray()")
    try:
        X = np.asarray(X.detach().cpu().numpy() if isinstance(X, Tensor) else X, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"X must hold numbers (n_samples, n_features): {e}") from e
    y = np.asarray(y.detach().cpu().numpy() if isinstance(y, Tensor) else y)
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("y holds NaN or inf: every sample needs one of the two class labels")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},), got {y.shape}")
    classes = np.unique(y)
    if len(classes) != 2:
        raise ValueError(
            f"sanity_check compares against a binary linear SVM and y has {len(classes)} classes "
            f"{classes.tolist()}; SVC would fit one-vs-one machines. Pass two classes "
            "(e.g. X[np.isin(y, [a, b])])."
        )
    return X, (y == classes[1]).astype(np.int64), classes


def _correlation(fn, a: np.ndarray, b: np.ndarray) -> float:
    """``fn``'s coefficient (Pearson or Spearman), defined where a side is constant."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        # a constant side: 1 where the other agrees with it to the solvers' precision (about
        # 1e-6 relative, so 1e-5 of the scale), 0 otherwise
        scale = max(float(np.abs(a).max(initial=0.0)), float(np.abs(b).max(initial=0.0)))
        return 1.0 if np.allclose(a, b, rtol=0.0, atol=1e-5 * scale) else 0.0
    return float(fn(a, b)[0])


def sanity_check(
    X,
    y,
    C: float = 1.0,
    weights: str = "svc",
    margin_tol: float = 1e-3,
    svc_tol: float = 1e-8,
    n_synthetic: int | None = None,
    synth_steps: int = 3000,
    synth_lr: float | None = None,
    synth_optimizer: str = "sgd",
    synth_lr_lambda: float | None = None,
    seed: int = 0,
    progress: bool = False,
    synth_init: str = "boundary",
    svc_max_iter: int = -1,
    svc_kkt_tol: float = 1e-4,
) -> SanityResult:
    """Fit ``SVC(kernel="linear", C=C)`` and check that DeepKKT recovers it.

    Parameters
    ----------
    X : array-like or Tensor of shape (n_samples, n_features)
    y : array-like or Tensor of shape (n_samples,)
        Exactly two classes; multi-class input raises ``ValueError`` (we do not fit
        one-vs-one machines).
    C : float, default=1.0
        Box constraint of the SVC; also our ``lambda_max``.
    weights : {"svc", "torch"}, default="svc"
        ``"svc"`` copies ``coef_`` and ``intercept_`` into the torch model (exact, the default);
        ``"torch"`` trains it in torch with the hinge loss and L2 (approximate).
    margin_tol : float, default=1e-3
        Samples with ``y f(x) < 1 + margin_tol`` count as on or inside the margin (the hinge is
        evaluated at ``1 + margin_tol``), absorbing libsvm's stopping tolerance.
    svc_tol : float, default=1e-8
        libsvm's stopping tolerance.
    n_synthetic : int, optional
        DSVs per class synthesised on the same model (0 skips synthesis). By default
        ``max(10, ceil(0.75 ||w||^2 / C))``: points inside the margin (``y f <= 1``) with
        ``lambda <= C`` can only satisfy ``w = sum_i lambda_i y_i x_i`` when
        ``sum_i lambda_i >= ||w||^2``, i.e. with at least ``||w||^2 / C`` points in all; the
        default leaves a margin of 1.5 over that.
    synth_steps : int, default=3000
    synth_lr : float, optional
        Step size on the synthesised inputs. By default, for ``"sgd"``, derived from the
        problem: ``1 / (2 L_x)`` with ``L_x = 2 N C^2 + C ||w||^2 / 4`` the curvature of the
        objective in the inputs (``N`` DSVs, every λ starting at ``C``); see
        :func:`synthesis_step_sizes`. For ``"adam"`` the default is 0.002 (not derived: Adam's
        steps do not scale with the gradient).
    synth_optimizer : {"sgd", "adam"}, default="sgd"
        Optimiser of the synthesis (see :class:`~kktexplain.DeepSupportVectors`). Adam's steps
        do not shrink with the gradient and throw DSVs past the margin (see the docs page on the
        SVM check for the numbers).
    synth_lr_lambda : float, optional
        Step size on the synthesised multipliers' parameter ``rho``. By default, for ``"sgd"``,
        ``1 / (2 L_rho)`` with ``L_rho = 2 N C^2 (R^2 + 1)`` and ``R`` a bound on the DSVs'
        norms (:func:`synthesis_step_sizes`); 0.05 for ``"adam"``.
    seed : int, default=0
    progress : bool, default=False
    synth_init : {"boundary", "origin"}, default="boundary"
        ``"boundary"`` starts the DSVs as noise around the point of the decision boundary
        nearest the data mean (:func:`synthesis_init`), of scale ``s / ||w||`` with
        ``s = min(0.01, ||w||^2 / (4 N C))``: a quarter of the distance in ``y f`` each DSV
        travels to close the residual, so none starts on the wrong side; ``"origin"`` as noise
        of scale 0.01 around the origin (the previous default, paper-style noise).
    svc_max_iter : int, default=-1
        libsvm's iteration cap (-1: none).
    svc_kkt_tol : float, default=1e-4
        SVC KKT violations above this are reported in ``diagnosis`` as SVC not having solved
        its problem.

    Returns
    -------
    SanityResult
    """
    if weights not in ("svc", "torch"):
        raise ValueError(f"weights must be 'svc' or 'torch', got {weights!r}")
    if isinstance(C, Tensor) and C.numel() == 1 and C.is_floating_point():
        C = C.item()
    if not isinstance(C, numbers.Real) or isinstance(C, bool | np.bool_):
        raise TypeError(f"C must be a float > 0, got {type(C).__name__}")
    if not C > 0 or not math.isfinite(C):
        raise ValueError(f"C must be a float > 0, got {C!r}")
    C = float(C)
    if synth_optimizer not in ("sgd", "adam"):
        raise ValueError(f"synth_optimizer must be 'sgd' or 'adam', got {synth_optimizer!r}")
    if synth_init not in ("boundary", "origin"):
        raise ValueError(f"synth_init must be 'boundary' or 'origin', got {synth_init!r}")
    if n_synthetic is not None:
        check_positive("n_synthetic", n_synthetic, integer=True, allow_zero=True)
    n_synthetic = None if n_synthetic is None else int(n_synthetic)
    check_positive("margin_tol", margin_tol, allow_zero=True)
    check_positive("svc_tol", svc_tol)
    check_positive("svc_kkt_tol", svc_kkt_tol)
    check_positive("synth_steps", synth_steps, integer=True, allow_zero=True)
    check_positive("seed", seed, integer=True, allow_zero=True)
    if isinstance(svc_max_iter, bool) or not isinstance(svc_max_iter, int):
        raise TypeError(f"svc_max_iter must be an int, got {type(svc_max_iter).__name__}")
    if svc_max_iter == 0 or svc_max_iter < -1:
        raise ValueError(f"svc_max_iter must be -1 (no cap) or > 0, got {svc_max_iter}")
    for name, value in (("synth_lr", synth_lr), ("synth_lr_lambda", synth_lr_lambda)):
        if value is not None:
            check_positive(name, value, allow_zero=name == "synth_lr_lambda")
    Xn, y01, _ = _binary(X, y)
    if not np.isfinite(Xn).all():
        raise ValueError("X must be finite (it holds NaN or inf)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        svc = SVC(kernel="linear", C=C, tol=svc_tol, max_iter=svc_max_iter).fit(Xn, y01)
    converged = not any(issubclass(c.category, ConvergenceWarning) for c in caught)
    # w = sum_i alpha_i y_i x_i: zero up to rounding when it is below 1e-9 of the terms' sizes
    terms = float((np.abs(svc.dual_coef_) @ np.linalg.norm(svc.support_vectors_, axis=1)).sum())
    if float(np.linalg.norm(svc.coef_)) <= 1e-9 * terms:
        raise ValueError(
            f"SVC(kernel='linear', C={C}) found w = 0: no linear function of X separates the two "
            "classes better than a constant, so there is no support set to recover; check X and "
            "y (or try a larger C)"
        )
    diag = svc_kkt_diagnostics(svc, Xn, y01, C)
    identity = float(np.abs(svc.dual_coef_ @ svc.support_vectors_ - svc.coef_).max())
    Xt, yt = torch.from_numpy(Xn), torch.from_numpy(y01)
    if weights == "svc":
        model = LinearSVMModel(Xn.shape[1]).double()
        with torch.no_grad():
            model.linear.weight.copy_(torch.tensor(svc.coef_))
            model.linear.bias.copy_(torch.tensor(svc.intercept_))
    else:
        model = fit_linear_svm_torch(Xt, yt, C, seed=seed)
    model.eval()
    ours_wb = torch.cat([model.linear.weight.detach()[0], model.linear.bias.detach()]).double().numpy()
    svc_wb = np.concatenate([svc.coef_[0], svc.intercept_])
    weights_gap = float(np.linalg.norm(ours_wb - svc_wb) / np.linalg.norm(svc_wb))
    # the bias is not regularised: its stationarity target is 0, not b (sum_i alpha_i y_i = 0)
    reference = {
        "linear.weight": torch.zeros_like(model.linear.weight),
        "linear.bias": model.linear.bias.detach().clone(),
    }
    hinge = KKTObjective(loss="hinge", hinge_margin=1.0 + margin_tol, name="svm_hinge")
    selection = DeepSupportVectors(
        objective=hinge, lambda_max=C, maximize_sum=True, param_names=None, progress=progress, seed=seed
    ).attribute(model, candidates=Xt, labels=yt, reference=reference)
    lam = selection.lambdas.double().numpy()
    alpha = np.zeros(len(Xn))
    alpha[svc.support_] = np.abs(svc.dual_coef_[0])
    # support: a term lambda_i y_i [x_i, 1] of [w, b] above 1e-6 of the largest (ours or SVC's);
    # relative, because the multipliers scale as 1 / |x|^2 (features in large units) and not with C
    norms = dual_term_norms(Xn)
    term_scale = max(float((lam * norms).max()), float((alpha * norms).max()), 1e-300)
    ours = lam * norms > 1e-6 * term_scale
    theirs = np.zeros(len(Xn), dtype=bool)
    theirs[svc.support_] = True
    w = model.linear.weight.detach().double().numpy()[0]
    ysign = 2 * y01 - 1
    resid = _stationarity_residual(w, lam, ysign, Xn)
    margin_dev = margin_abs = feas = active_frac = synth_resid = synth_bias = float("nan")
    synthesis = None
    if n_synthetic is None:
        n_synthetic = max(10, math.ceil(0.75 * float(np.dot(w, w)) / C))
    lr = lr_lambda = float("nan")
    if n_synthetic > 0:
        # A point beyond the margin has a zero hinge gradient: it no longer moves and explains
        # nothing. Closing the residual moves every active DSV along y w by about
        # lambda_i ||w||^2 / sum_j lambda_j^2 in y f, i.e. ||w||^2 / (N C) <= 2/3 with every λ at
        # C and the default n_synthetic. So the DSVs start on the decision boundary (f = 0; or
        # around the origin, as before), every λ starts at C (lambda_scale=C; free to fall) and
        # plain gradient descent runs with steps derived from the objective's curvature
        # (synthesis_step_sizes). The primal term is weighted by C, like the stationarity
        # gradient, so it brings misclassified DSVs back without throwing them across the
        # margin. docs/svm.md has the derivation and the numbers.
        synth_obj = KKTObjective(
            norm=0.0,
            loss="hinge",
            distance="l2sq",
            per_layer=False,
            clean=1.0,
            augmented=0.0,
            primal=float(C),
            primal_reduction="sum",
            name="svm_synthesis",
        )
        b0 = float(model.linear.bias.detach()[0])
        if synth_init == "boundary":
            # closing the residual moves each DSV by ||w||^2 / (N C) in y f (N = 2 n_synthetic):
            # the starting noise in f stays well below that, so no DSV starts on the wrong side
            scale = min(0.01, 0.25 * float(w @ w) / (2 * n_synthetic * C))
            x_init, y_init = synthesis_init(w, b0, Xn, n_synthetic, seed, scale)
            init = {"init": "real"}
            data = {"labels": torch.from_numpy(y_init), "init_data": torch.from_numpy(x_init)}
        else:
            # N(0, 0.01^2 I) noise, drawn inside DeepSupportVectors: norms below 0.03 sqrt(D)
            x_init = np.full((2 * n_synthetic, Xn.shape[1]), 0.03)
            init = {"init": "noise", "init_scale": 0.01}
            data = {}
        if synth_optimizer == "sgd":
            lr_auto, lr_lambda_auto = synthesis_step_sizes(w, C, x_init)
        else:
            lr_auto, lr_lambda_auto = 0.002, 0.05
        lr = float(lr_auto if synth_lr is None else synth_lr)
        lr_lambda = float(lr_lambda_auto if synth_lr_lambda is None else synth_lr_lambda)
        synthesis = DeepSupportVectors(
            n_per_class=n_synthetic,
            param_names=None,  # w and b: the SVM's stationarity
            objective=synth_obj,
            augmentation=None,
            steps=synth_steps,
            lr=lr,
            lr_lambda=lr_lambda,
            optimizer=synth_optimizer,
            lambda_max=C,
            lambda_scale=C,
            seed=seed,
            progress=progress,
            **init,
        ).attribute(model, reference=reference, **data)
        xs = synthesis.inputs.double()
        with torch.no_grad():
            f = model.decision_function(xs).numpy()
        margin_dev = float(np.mean(np.abs(f) - 1))
        margin_abs = float(np.mean(np.abs(np.abs(f) - 1)))
        feas = synthesis.kkt.feasibility_rate
        ys = 2 * synthesis.labels.double().numpy() - 1
        active = ys * f < 1.0
        active_frac = float(active.mean())
        synth_lam = synthesis.lambdas.double().numpy() * active  # inactive DSVs have no gradient
        synth_resid = _stationarity_residual(w, synth_lam, ys, xs.numpy())
        synth_bias = float(abs(np.dot(synth_lam, ys)) / np.linalg.norm(w))
    f1 = float(f1_score(theirs, ours, zero_division=0.0))
    differ = ours != theirs
    with torch.no_grad():
        svc_margin = ysign * model.decision_function(Xt.double()).numpy()
    small = np.maximum(alpha, lam) * norms < 1e-4 * term_scale
    borderline = differ & (small | (np.abs(svc_margin - 1) <= margin_tol))
    return SanityResult(
        precision=float(precision_score(theirs, ours, zero_division=0.0)),
        recall=float(recall_score(theirs, ours, zero_division=0.0)),
        f1=f1,
        pearson=_correlation(pearsonr, lam, alpha),
        spearman=_correlation(spearmanr, lam, alpha),
        stationarity_residual=float(resid),
        svc_identity_error=identity,
        margin_deviation=margin_dev,
        margin_abs_deviation=margin_abs,
        synth_feasibility=float(feas),
        synth_active_fraction=active_frac,
        synth_stationarity_residual=synth_resid,
        n_samples=len(Xn),
        n_support_svc=int(theirs.sum()),
        n_support_ours=int(ours.sum()),
        C=float(C),
        weights=weights,
        weights_gap=weights_gap,
        synth_bias_residual=synth_bias,
        svc_kkt_violation=diag.max_violation,
        svc_margin_violation=diag.margin_violation,
        svc_equality_violation=diag.equality_violation,
        svc_converged=converged,
        svc_n_free=diag.n_free,
        svc_free_rank=diag.free_rank,
        svc_dual_unique=diag.dual_unique,
        feature_scale_ratio=diag.feature_scale_ratio,
        diagnosis=svc_advice(
            diag,
            svc_kkt_tol,
            converged,
            f1,
            float(resid),
            int(differ.sum()),
            int(borderline.sum()),
            weights_gap,
        ),
        synth_lr=lr,
        synth_lr_lambda=lr_lambda,
        synth_init=synth_init,
        selection=selection,
        synthesis=synthesis,
        model=model,
        svc=svc,
    )
