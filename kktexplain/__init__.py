"""kktexplain: the support vectors of a deep network (Deep Support Vectors, DeepKKT).

Lee, Lee, Hwang, Kwak. "Deep Support Vectors". NeurIPS 2024. arXiv:2403.17329.
"""

import warnings as _warnings

with _warnings.catch_warnings():
    # torch's forward-mode AD (torch.func.jvp, used by the explanations) scripts its
    # decompositions with torch.jit.script, which torch itself now deprecates: every user saw
    # that FutureWarning on the first explanation. Load them once here, quietly.
    _warnings.filterwarnings("ignore", r".*torch\.jit\.script.* is deprecated", FutureWarning)
    try:
        import torch._decomp.decompositions_for_jvp  # noqa: F401
    except ImportError:  # another torch layout: nothing to silence
        pass

from ._explainer import DeepSupportVectors  # noqa: E402
from ._readiness import KKTReadiness, kkt_readiness  # noqa: E402
from ._result import Coreset, DSVResult, KKTResiduals  # noqa: E402
from ._synthesis import NonFiniteError  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "Coreset",
    "DSVResult",
    "DeepSupportVectors",
    "KKTReadiness",
    "KKTResiduals",
    "NonFiniteError",
    "__version__",
    "kkt_readiness",
]
