"""GPU paths: CUDA results against the same computation on the CPU (skipped without CUDA).

Both runs are float64, so the only differences are summation orders: inputs, multipliers and
residuals must agree to ``rtol=1e-6, atol=1e-8`` (multipliers from the least-squares solve to
``atol=1e-6``, since the solve amplifies the gradients' rounding by its condition number).
"""

import copy

import pytest
import torch

from kktexplain import DeepSupportVectors
from kktexplain.kkt import Augmentation
from kktexplain.models import ConvNet, ResNet

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

RTOL, ATOL, LAMBDA_ATOL = 1e-6, 1e-8, 1e-6
# the flip with probability one is deterministic, so the CPU and CUDA generators (which draw
# different numbers) cannot make the two runs differ
FLIP = Augmentation(translate=0.0, crop=0.0, flip=1.0, cutout=0.0, noise=0.0)


@pytest.mark.parametrize(
    "factory", [lambda: ConvNet((1, 12, 12), 3, width=8), lambda: ResNet((1, 12, 12), 3, widths=(4, 8))]
)
@pytest.mark.parametrize("objective", ["default", "paper_alg1"])
def test_cuda_matches_cpu(factory, objective):
    torch.manual_seed(0)
    cpu = factory().double().eval()
    cuda = copy.deepcopy(cpu).cuda()
    kw = dict(n_per_class=2, steps=5, augmentation=FLIP, objective=objective, progress=False)
    a = DeepSupportVectors(**kw).attribute(cpu)
    b = DeepSupportVectors(**kw).attribute(cuda)
    assert b.inputs.device.type == "cpu" and torch.isfinite(b.inputs).all()
    torch.testing.assert_close(b.inputs, a.inputs, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(b.lambdas, a.lambdas, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(b.kkt.margin, a.kkt.margin, rtol=RTOL, atol=ATOL)
    for k, v in a.kkt.stationarity.items():
        assert b.kkt.stationarity[k] == pytest.approx(v, rel=RTOL, abs=ATOL), k
    for k, v in a.history.items():
        assert b.history[k] == pytest.approx(v, rel=RTOL, abs=ATOL), k

    x = torch.randn(12, 1, 12, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = torch.arange(3).repeat(4)
    sel = DeepSupportVectors(progress=False, projection_dim=64)
    sa = sel.attribute(cpu, candidates=x, labels=y)
    sb = sel.attribute(cuda, candidates=x, labels=y)
    torch.testing.assert_close(sb.lambdas, sa.lambdas, rtol=0, atol=LAMBDA_ATOL)
    assert sb.kkt.stationarity["rel_l2"] == pytest.approx(sa.kkt.stationarity["rel_l2"], rel=1e-6)
