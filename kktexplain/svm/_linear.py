"""A binary linear SVM as a torch classifier, and its training by the primal hinge objective."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["LinearSVMModel", "fit_linear_svm_torch"]


class LinearSVMModel(nn.Module):
    """``f(x) = w.x + b`` as two logits ``(-f/2, f/2)``: class 1 is the SVM's positive side.

    Parameters
    ----------
    n_features : int

    Shapes
    ------
    ``(N, n_features) -> (N, 2)``
    """

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, 1)
        self.input_shape = (n_features,)
        self.num_classes = 2

    def decision_function(self, x: Tensor) -> Tensor:
        """``f(x) = w.x + b``, shape ``(N,)``."""
        return self.linear(x).squeeze(-1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(-f/2, f/2)``, shape ``(N, 2)``."""
        f = self.decision_function(x)
        return torch.stack([-f / 2, f / 2], dim=-1)


def fit_linear_svm_torch(
    X: Tensor, y01: Tensor, C: float = 1.0, steps: int = 3000, lr: float = 0.05, seed: int = 0
) -> LinearSVMModel:
    """Train ``1/2 ||w||^2 + C sum_i hinge(y_i f(x_i))`` in torch (full batch, Adam, decaying lr).

    An approximation of libsvm's solution: the hinge is not smooth, so the optimum is reached
    only up to the step size. Adam's steps have a size of about ``lr`` in the units of what it
    optimises, so it optimises the weights of the standardised features: ``w = u / sigma`` and
    ``b = b' - w . mu`` (``mu``, ``sigma`` each feature's mean and standard deviation, 1 where
    it is constant). The objective, and so its optimum, is the same; features in large or
    small units (and far from zero) are reached in the same number of steps.

    Parameters
    ----------
    X : Tensor of shape (N, D)
    y01 : Tensor of shape (N,)
        Labels in ``{0, 1}``.
    C : float, default=1.0
    steps : int, default=3000
    lr : float, default=0.05
        Adam's step size for ``u`` and ``b'`` (standardised units).
    seed : int, default=0

    Returns
    -------
    LinearSVMModel
    """
    with torch.random.fork_rng(devices=[]):  # the initialisation's draws; the caller's state kept
        torch.manual_seed(seed)
        model = LinearSVMModel(X.shape[1]).to(X.dtype)
    mu = X.mean(0)
    sigma = X.std(0, correction=0)
    sigma = torch.where(sigma > 0, sigma, torch.ones_like(sigma))
    Z = (X - mu) / sigma
    u = model.linear.weight.detach().clone().requires_grad_(True)  # (1, D), standardised units
    b = model.linear.bias.detach().clone().requires_grad_(True)
    ysign = y01.to(X.dtype) * 2 - 1
    opt = torch.optim.Adam([u, b], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        f = Z @ u[0] + b
        loss = 0.5 * (u[0] / sigma).pow(2).sum() + C * torch.relu(1 - ysign * f).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        w = u / sigma
        model.linear.weight.copy_(w)
        model.linear.bias.copy_(b - w[0] @ mu)
    return model.eval()
