"""Integrated Gradients' completeness delta of SupportVectorAttribution, ReLU against tanh.

A 5-32-3 MLP trained on a seeded toy problem, each activation in turn; the median of
|delta| / |sum of attributions| over 20 test inputs, for the last-layer and the full scope, at 32
and 512 steps. Quoted in docs/explain.md ("The delta on ReLU networks").

    python benchmarks/ig_delta_relu.py
"""

import torch
from torch import nn

from kktexplain import DeepSupportVectors
from kktexplain.attr import SupportVectorAttribution


def main() -> None:
    for act in (nn.ReLU, nn.Tanh):
        torch.manual_seed(0)
        x = torch.randn(300, 5)
        y = (x @ torch.randn(5, 3) + 0.5 * torch.randn(300, 3)).argmax(1)
        model = nn.Sequential(nn.Linear(5, 32), act(), nn.Linear(32, 3))
        opt = torch.optim.Adam(model.parameters(), 1e-2, weight_decay=1e-3)
        for _ in range(300):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        for scope in (["2.weight", "2.bias"], None):
            explainer = DeepSupportVectors(progress=False, param_names=scope)
            sel = explainer.attribute(model, candidates=x[:100], labels=y[:100])
            sva = SupportVectorAttribution(model, sel)
            for n_steps in (32, 512):
                a, d = sva.attribute(x[200:220], n_steps=n_steps, return_convergence_delta=True)
                ratio = float((d.abs() / a.sum(1).abs()).median())
                name = "last layer" if scope else "all parameters"
                print(f"{act.__name__:5s} {name:15s} n_steps={n_steps:4d} median |delta|/|sum| {ratio:.4f}")


if __name__ == "__main__":
    main()
