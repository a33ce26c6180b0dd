"""GPU paths (run only where CUDA is available; skipped on the CPU-only CI)."""

import pytest
import torch

from kktexplain import DeepSupportVectors
from kktexplain.models import ConvNet, ResNet

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize(
    "factory", [lambda: ConvNet((1, 12, 12), 3, width=8), lambda: ResNet((1, 12, 12), 3, widths=(4, 8))]
)
def test_synthesis_and_selection_on_cuda(factory):
    torch.manual_seed(0)
    model = factory().cuda().eval()
    dsv = DeepSupportVectors(n_per_class=2, steps=5, progress=False).attribute(model)
    assert dsv.inputs.device.type == "cpu" and torch.isfinite(dsv.inputs).all()
    x = torch.randn(12, 1, 12, 12)
    sel = DeepSupportVectors(progress=False, projection_dim=64).attribute(
        model, candidates=x, labels=torch.arange(3).repeat(4)
    )
    assert (sel.lambdas >= 0).all()
    cpu = DeepSupportVectors(n_per_class=2, steps=5, progress=False).attribute(model.cpu())
    assert cpu.inputs.shape == dsv.inputs.shape
