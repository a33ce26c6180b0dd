"""Mislabel detection with the exact (unsketched) last layer, and what equal multipliers give.

The noisy Fashion-MNIST ConvNet of ``kktexplain evaluate`` (10,000 training images, 10% of
labels flipped, seed 0; cached by ``evaluate`` in its output folder, or trained here). One
forward pass gives the penultimate features ``h`` and probabilities ``p``; the last layer's
per-sample gradients are the outer products ``(p - y) ⊗ [h, 1]`` (11,530 coordinates, exact).
Rows:

* the plain loss;
* equal multipliers (a weight-decay stationary point): self-influence ``||∇L_j||²``;
* the non-negative least-squares multipliers of the exact last layer, by projected FISTA after
  200 and 1,600 iterations (the relative stationarity residual is reported): raw λ and
  self-influence ``λ_j ||∇L_j||²``;
* the last layer refitted on the frozen features with L2 (weight decay 5e-4, scikit-learn's
  LogisticRegression, 300 L-BFGS iterations), as representer points do: its loss and
  ``||∇L_j||²``, and how often it agrees with the network.

Writes ``benchmarks/results/mislabel_lastlayer.json``::

    python benchmarks/mislabel_lastlayer.py [--model-cache /tmp/ev1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _common import write_json
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from kktexplain.attr._baselines import last_linear
from kktexplain.attr._protocol import _train_convnet, noisy_fashion_mnist
from kktexplain.kkt._nnls import projected_fista
from kktexplain.models import REFERENCE_MODELS, ConvNet


def metrics(score: torch.Tensor, flipped: np.ndarray) -> dict:
    s = score.double().numpy()
    top = np.argsort(-s, kind="stable")[: len(s) // 10]
    return {"roc_auc": float(roc_auc_score(flipped, s)), "flipped_in_top10": float(flipped[top].mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-cache", default="kktexplain-evaluate", help="kktexplain evaluate's --out folder")
    args = p.parse_args()
    torch.manual_seed(0)
    x, noisy, flipped, _ = noisy_fashion_mnist(10_000, 0.1, 0)
    f = flipped.numpy()
    cached = Path(args.model_cache) / "noisy_convnet_n10000_flip0.1_seed0.pt"
    if cached.is_file():
        model = ConvNet((1, 28, 28), 10, **REFERENCE_MODELS["fashion_mnist_convnet"].arch_kwargs)
        model.load_state_dict(torch.load(cached, weights_only=True))
    else:
        model, _ = _train_convnet(x, noisy, progress=False)
    model.eval()
    _, lin = last_linear(model)
    feats = []
    hook = lin.register_forward_hook(lambda m, i, o: feats.append(i[0].detach()))
    start = time.perf_counter()
    with torch.no_grad():
        logits = torch.cat([model(x[i : i + 256]) for i in range(0, len(x), 256)])
    hook.remove()
    forward_s = time.perf_counter() - start
    h = torch.cat([torch.cat(feats), torch.ones(len(x), 1)], 1)
    r = logits.softmax(1) - torch.nn.functional.one_hot(noisy, 10).float()
    grad_sq = r.pow(2).sum(1) * h.pow(2).sum(1)
    loss = torch.nn.functional.cross_entropy(logits, noisy, reduction="none")
    rows = {
        "loss": metrics(loss, f),
        "equal_lambda_self_influence": metrics(grad_sq, f),
    }
    theta = torch.cat([lin.weight.detach(), lin.bias.detach()[:, None]], 1).reshape(-1)
    a = (r[:, :, None] * h[:, None, :]).reshape(len(x), -1).T.contiguous()  # (11530, N)
    for iters in (200, 1600):
        start = time.perf_counter()
        lam, _ = projected_fista(a, -theta, None, max_iter=iters, tol=0.0)
        resid = float((a @ lam + theta).norm() / theta.norm())
        rows[f"nnls_fista{iters}"] = {
            "relative_residual": resid,
            "n_nonzero_above_1e-3_max": int((lam > 1e-3 * lam.max()).sum()),
            "lambda": metrics(lam, f),
            "self_influence": metrics(lam * grad_sq, f),
            "seconds": time.perf_counter() - start,
        }
        print(iters, rows[f"nnls_fista{iters}"], flush=True)
    n, wd = len(x), 5e-4
    start = time.perf_counter()
    feats64 = h[:, :-1].double().numpy()
    clf = LogisticRegression(C=1.0 / (n * wd), max_iter=300).fit(feats64, noisy.numpy())
    prob = torch.from_numpy(clf.predict_proba(feats64))
    r2 = prob - torch.nn.functional.one_hot(noisy, 10).double()
    rows["refit_last_layer_l2"] = {
        "weight_decay": wd,
        "agreement_with_network": float((prob.argmax(1) == logits.argmax(1)).double().mean()),
        "loss": metrics(-prob[torch.arange(n), noisy].log(), f),
        "equal_lambda_self_influence": metrics(r2.pow(2).sum(1) * h.double().pow(2).sum(1), f),
        "seconds": time.perf_counter() - start,
    }
    write_json("mislabel_lastlayer", {"forward_seconds": forward_s, "rows": rows})
    print(rows, flush=True)


if __name__ == "__main__":
    main()
