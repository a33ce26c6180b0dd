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


def noisy_digits_mlp(seed: int):
    """The held-out mislabel problem: 80% of digits, 10% of labels flipped, an MLP trained on them.

    Returns ``(model, inputs, noisy_labels, flipped)``; the model is the reference MLP recipe
    (two hidden layers of 128, Adam, weight decay 5e-4, 60 epochs), in eval mode.
    """
    import torch

    from kktexplain.datasets import load_digits
    from kktexplain.models import MLP, train_classifier

    ds = load_digits()
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(ds), generator=gen)[: int(0.8 * len(ds))]
    x, clean = ds.inputs[perm], ds.labels[perm]
    flipped = torch.zeros(len(x), dtype=torch.bool)
    flipped[torch.randperm(len(x), generator=gen)[: len(x) // 10]] = True
    noisy = torch.where(flipped, (clean + torch.randint(1, 10, (len(x),), generator=gen)) % 10, clean)
    torch.manual_seed(seed)
    model = MLP((1, 8, 8), 10, hidden=(128, 128))
    train_classifier(
        model, (x, noisy), epochs=60, lr=1e-3, weight_decay=5e-4, batch_size=128, seed=seed, progress=False
    )
    return model.eval(), x, noisy, flipped
