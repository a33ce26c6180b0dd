"""Mislabel rankings from one forward pass of the last layer: equal multipliers and leave-one-out.

For a final ``nn.Linear`` trained with cross-entropy, sample j's last-layer gradient is the
outer product ``(p_j - y_j) (x) [h_j, 1]``, so everything below needs one forward pass:

* ``loss``: the plain per-sample loss;
* ``equal_self_influence``: ``c ||grad L_j||^2 = c ||p_j - y_j||^2 (||h_j||^2 + 1)`` with the equal
  multiplier ``c = argmin ||theta + c sum_j grad L_j||`` (what ``multipliers="equal"`` gives);
* ``loo_loss``: the loss of j when its own term ``-c grad L_j`` is taken out of the expansion
  ``theta ~ -c sum_i grad L_i``. The model is linear in its last layer, so j's logits move by
  exactly ``c (||h_j||^2 + 1) (p_j - y_j)``.

Problems: the noisy Fashion-MNIST ConvNet of ``kktexplain evaluate`` (10,000 images, 10% flipped;
trained and cached in --cache) and, held out, digits with 10% flipped and the MLP recipe of
``mislabel_ridge_screen.py`` (seeds 0-2).

Usage: python benchmarks/mislabel_loo.py [--cache DIR] [--out benchmarks/results/mislabel_loo.json]
"""

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import noisy_digits_mlp

from kktexplain.attr._baselines import features, last_linear
from kktexplain.attr._evaluate import _rank_metrics


def scores(model, x, y, batch_size=256):
    _, lin = last_linear(model)
    h = features(model, x, batch_size).double()
    with torch.no_grad():
        z = torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]).double()
    r = z.softmax(1) - F.one_hot(y, z.shape[1]).double()
    hn = (h * h).sum(1) + 1
    theta = torch.cat([lin.weight.detach().double(), lin.bias.detach().double()[:, None]], 1)
    total = r.T @ torch.cat([h, torch.ones(len(h), 1, dtype=h.dtype)], 1)  # sum_j grad L_j
    c = max(float(-(theta * total).sum() / (total * total).sum()), 0.0)
    cosine = float(-(theta * total).sum() / (theta.norm() * total.norm()))
    loss = F.cross_entropy(z, y, reduction="none")
    return (
        {
            "loss": loss,
            "equal_self_influence": c * (r * r).sum(1) * hn,
            "loo_loss": F.cross_entropy(z + c * hn[:, None] * r, y, reduction="none"),
        },
        c,
        cosine,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cache", default="benchmarks/results/evaluation")
    parser.add_argument("--out", default="benchmarks/results/mislabel_loo.json")
    args = parser.parse_args()
    from kktexplain.attr._protocol import _train_convnet, noisy_fashion_mnist
    from kktexplain.models import REFERENCE_MODELS, ConvNet

    rows = []
    x, noisy, flipped, _ = noisy_fashion_mnist(10_000, 0.1, 0)
    cached = Path(args.cache) / "noisy_convnet_n10000_flip0.1_seed0.pt"
    if cached.is_file():
        model = ConvNet((1, 28, 28), 10, **REFERENCE_MODELS["fashion_mnist_convnet"].arch_kwargs)
        model.load_state_dict(torch.load(cached, weights_only=True))
        model.eval()
    else:
        model, _ = _train_convnet(x, noisy, False)
    s, c, cos = scores(model, x, noisy)
    for k, v in s.items():
        rows.append(
            {
                "problem": "fashion_mnist_convnet",
                "seed": 0,
                "method": k,
                "c": c,
                "cosine": cos,
                **_rank_metrics(v, flipped),
            }
        )
    for seed in (0, 1, 2):
        mlp, xd, nd, fl = noisy_digits_mlp(seed)
        s, c, cos = scores(mlp, xd, nd)
        for k, v in s.items():
            rows.append(
                {
                    "problem": "digits_mlp",
                    "seed": seed,
                    "method": k,
                    "c": c,
                    "cosine": cos,
                    **_rank_metrics(v, fl),
                }
            )
    for r in rows:
        print(r["problem"], r["seed"], r["method"], f"{r['roc_auc']:.5f}", f"{r['flipped_in_top10']:.3f}")
    Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
