"""The exact multiplier solve for few samples of a large model: blocked QR against the iterative path.

Selection keeps per-sample gradients exact while ``N P <= 2.5e8``; with ``N P > 2e7`` the solve of
``min_{λ >= 0} ||G^T λ + θ*||`` used to take the iterative path (200 FISTA iterations, then a
working set solved by Lawson-Hanson on all ``P`` rows). For ``N <= 512`` it now reduces
``G^T = Q R`` by a QR over blocks of rows (``kkt._selection._blocked_qr``) and solves the
``N x N`` problem. Side by side in one process: the per-sample gradients of an untrained
torchvision resnet18 (11.2 M parameters, 32 x 32 inputs, eval mode) on N random inputs, and a
target that half of them explain (``-G^T u`` with ``u`` uniform on every other sample, plus
``θ*`` scaled to half its norm: an untrained model's own ``θ*`` is explained by no λ > 0, which
times nothing). Wall time of the solve alone (medians of three), each solution's relative
residual, and the largest difference of the two solutions' λ. Writes
``benchmarks/results/nnls_blocked_qr_time.json``::

    python benchmarks/nnls_blocked_qr_time.py --n 32 128
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchvision
from _common import write_json

import kktexplain.kkt._selection as selection
from kktexplain.kkt import FunctionalModel, collect_gradients, cross_entropy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, nargs="+", default=[32, 128])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    fm = FunctionalModel(model)
    theta = torch.cat([v.detach().flatten() for v in fm.target.values()])
    rows = []
    for n in args.n:
        x, y = torch.rand(n, 3, 32, 32), torch.randint(0, 10, (n,))
        grads = collect_gradients(fm, x, y, cross_entropy, 32, None)
        u = torch.rand(n, generator=torch.Generator().manual_seed(n)) * (torch.arange(n) % 2 == 0)
        explained = -(grads.T @ u.to(grads.dtype))
        target = explained + 0.5 * theta * (explained.norm() / theta.norm())
        row = {"n": n, "num_params": int(theta.numel())}
        for name, cap in [("iterative", 0), ("blocked_qr", selection._BLOCKED_QR_MAX_COLUMNS)]:
            selection._BLOCKED_QR_MAX_COLUMNS = cap
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                lam, info = selection.solve_multipliers(grads, target)
                times.append(time.perf_counter() - t0)
            row[name] = {
                "seconds": statistics.median(times),
                "residual": info["residual"],
                "solver": info["solver"],
            }
            row[name + "_lambdas"] = lam.double()
        selection._BLOCKED_QR_MAX_COLUMNS = 512
        a, b = row.pop("iterative_lambdas"), row.pop("blocked_qr_lambdas")
        row["max_abs_lambda_difference"] = float((a - b).abs().max())
        row["speedup"] = row["iterative"]["seconds"] / row["blocked_qr"]["seconds"]
        print(row, flush=True)
        rows.append(row)
    write_json("nnls_blocked_qr_time", {"threads": torch.get_num_threads(), "rows": rows})


if __name__ == "__main__":
    main()
