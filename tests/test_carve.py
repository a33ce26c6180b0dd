"""The same seed gives the same DSVs as before the explainer was carved into modules.

``tests/data/carve_reference.npz`` was written by ``python tests/carve_cases.py`` with the
single-module explainer. Every tensor (inputs, labels, λ, pruning mask, per-sample residuals,
history, stationarity numbers) must be equal bit for bit. Bit equality across CPU builds is not
promised by PyTorch, so elsewhere than where the reference was written the comparison is to
``1e-5``.
"""

import numpy as np
import pytest
import torch
from carve_cases import REFERENCE, cases, flatten, platform_tag, run_case


@pytest.fixture(scope="module")
def reference():
    with np.load(REFERENCE, allow_pickle=False) as f:
        return {k: f[k].copy() for k in f.files}


@pytest.mark.parametrize("name", list(cases()))
def test_same_seed_same_result_as_before_the_carve(name, reference):
    got = flatten(run_case(name))
    want = {k.split("/", 1)[1]: v for k, v in reference.items() if k.startswith(f"{name}/")}
    assert set(got) == set(want)
    exact = bytes(reference["platform"]).decode() == platform_tag()
    for k, v in want.items():
        a, b = torch.from_numpy(got[k]), torch.from_numpy(v)
        if exact:
            assert torch.equal(a, b), f"{name}: {k} differs"
        else:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"{name}: {k}")
