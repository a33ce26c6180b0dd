"""Shared pieces of the benchmark scripts (not part of the package)."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def median_time(fn, repeats: int = 7, warmup: int = 2, clock=time.perf_counter) -> float:
    """Median time of ``fn()`` in seconds: wall time, or ``clock=time.process_time`` for this
    process's CPU time (robust to other jobs on a shared machine; use one thread)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


def write_json(name: str, payload: dict) -> Path:
    """Write ``payload`` (plus the command line and versions) to ``results/<name>.json``."""
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "command": "python " + " ".join(sys.argv),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        **payload,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2))
    return path


def lambda_vs_class_accuracy(lambdas, labels, teacher, test, num_classes: int = 10) -> dict:
    """Per-class sum of ``lambdas`` against ``teacher``'s per-class accuracy on ``test``.

    Returns ``lambda_sum``, ``test_accuracy`` (lists of ``num_classes``) and their ``pearson`` and
    ``spearman`` correlations.
    """
    from scipy.stats import pearsonr, spearmanr

    from kktexplain.models import predict

    lam, y = torch.as_tensor(lambdas), torch.as_tensor(labels)
    pred = predict(teacher, test.inputs).argmax(-1)
    acc = torch.stack([(pred[test.labels == c] == c).float().mean() for c in range(num_classes)])
    lam_sum = torch.stack([lam[y == c].sum() for c in range(num_classes)])
    return {
        "lambda_sum": lam_sum.tolist(),
        "test_accuracy": acc.tolist(),
        "pearson": float(pearsonr(lam_sum.numpy(), acc.numpy())[0]),
        "spearman": float(spearmanr(lam_sum.numpy(), acc.numpy())[0]),
    }
