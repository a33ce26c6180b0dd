"""Kinds of model beyond MLPs and ConvNets: attention, recurrent layers, wrappers.

Each was found failing by a stress test on models the suite had not tried; the references are
literal autograd computations in float64.
"""

import torch
from conftest import assert_same_snapshot, model_snapshot
from torch import nn

from kktexplain import DeepSupportVectors
from kktexplain.attr import SupportVectorAttribution


def _exact_reference(model, x, target):
    """``<theta, grad_theta f_c(x)>`` over every parameter, one autograd call per input."""
    params = list(model.parameters())
    out = model(x)
    vals = []
    for i in range(len(x)):
        g = torch.autograd.grad(out[i, target[i]], params, retain_graph=True, allow_unused=True)
        vals.append(sum((p * gi).sum() for p, gi in zip(params, g) if gi is not None))
    return torch.stack(vals).detach()


class _Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.att = nn.MultiheadAttention(4, 2, batch_first=True)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.att(x, x, x, need_weights=False)[0].mean(1))


def test_attention_model_is_explained_and_synthesized():
    """The fused attention kernels have no jvp and no double backward: ours take the math form."""
    torch.manual_seed(0)
    model = _Attention().double().eval()
    x, y = torch.randn(20, 5, 4, dtype=torch.float64), torch.arange(20) % 3
    before = model_snapshot(model)
    sel = DeepSupportVectors(param_names=None, progress=False).attribute(model, candidates=x, labels=y)
    e = sel.explain(model, x[:2], k=2, maps="total", n_steps=8)
    torch.testing.assert_close(e.exact, _exact_reference(model, x[:2], e.target))
    torch.testing.assert_close(e.residual, e.exact - e.expansion)
    a, delta = SupportVectorAttribution(model, sel).attribute(
        x[:2], target=e.target, n_steps=64, return_convergence_delta=True
    )
    assert a.shape == x[:2].shape and bool(torch.isfinite(delta).all())
    dsv = DeepSupportVectors(n_per_class=1, steps=3, augmentation=None, progress=False).attribute(
        model, input_shape=(5, 4)
    )
    assert dsv.inputs.shape == (3, 5, 4) and bool(torch.isfinite(dsv.inputs).all())
    assert_same_snapshot(before, model_snapshot(model))
