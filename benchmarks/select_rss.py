"""Peak resident memory (RSS) of selection at N = 10k, 30k, 60k Fashion-MNIST training images.

Each N runs in a fresh subprocess (``--child N``), so no peak carries over from the previous
one. The child loads the data, keeps the first N images (a copy; the rest is freed) and the
model, records its RSS (the baseline), resets its peak RSS (``/proc/self/clear_refs``, Linux),
then runs ``DeepSupportVectors(projection_dim=K, chunk_size=C).attribute(model, candidates=X,
labels=y)`` (the public API) while a thread samples ``VmRSS`` every 20 ms. Reported per N:

* ``peak_rss_mb``: ``VmHWM`` after selection, the high-water mark of the process during the
  selection call (``ru_maxrss_mb``, ``resource.getrusage(RUSAGE_SELF)``, agrees);
* ``baseline_rss_mb``: RSS just before selection (Python, torch, the N images, the model);
* ``selection_mb``: ``peak - baseline``, what selection itself added;
* ``load_peak_rss_mb``: the peak while the data were read (before the reset);
* ``gradient_stage_peak_mb`` / ``solve_stage_peak_mb``: the sampled peak while the per-sample
  gradients were collected (up to ``settings["gradient_seconds"]``) and afterwards (solve and
  exact residuals);
* ``g_matrix_mb``: the size of the sketched gradient matrix ``N x K`` in float32, for comparison.

The parent also records ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` after each child (a
running maximum over the children, after their resets).

The model: by default a small MLP (784 -> 32 -> 10, 25,450 parameters) trained for one epoch
(kept in ``--small-cache``), because per-sample gradients of the 128-wide reference ConvNet take
about 6 minutes per 60,000 images on 2 idle cores, far more on shared ones (``--model reference``
uses the cached reference model). With a sketch the gradient matrix is ``N x projection_dim``
whatever the model, so the memory that grows with N is the same; the model changes the
per-chunk working memory, which does not grow with N.

Usage::

    python benchmarks/select_rss.py                      # 10k, 30k, 60k; K=2048, chunk 256
    python benchmarks/select_rss.py --n 10000 --model reference
    python benchmarks/select_rss.py --offload-dir /tmp --name select_rss_offload   # matrix on disk
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def _status_mb(key: str = "VmRSS") -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (its high-water mark) of this process, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    """Reset this process's peak RSS (``VmHWM`` and ``ru_maxrss``) to its current RSS (Linux)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _maxrss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # kilobytes on Linux


def _small_model():
    from kktexplain.models import MLP

    torch.manual_seed(0)
    return MLP((1, 28, 28), 10, hidden=(32,))


def _train_small(path: Path) -> dict:
    """Train the small MLP for one epoch on all 60,000 images; save its state dict."""
    from kktexplain.datasets import load_fashion_mnist
    from kktexplain.models import accuracy, train_classifier

    train, test = load_fashion_mnist(), load_fashion_mnist(train=False)
    model = _small_model()
    start = time.perf_counter()
    train_classifier(model, (train.inputs, train.labels), epochs=1, lr=3e-3, batch_size=256, progress=False)
    seconds = time.perf_counter() - start
    torch.save(model.state_dict(), path)
    n_params = sum(p.numel() for p in model.parameters())
    return {
        "test_accuracy": float(accuracy(model, (test.inputs, test.labels))),
        "train_seconds": seconds,
        "n_params": n_params,
    }


def child(args: argparse.Namespace) -> None:
    from kktexplain import DeepSupportVectors
    from kktexplain.datasets import load_fashion_mnist

    torch.set_num_threads(args.threads)
    train = load_fashion_mnist()
    x, y = train.inputs[: args.child].clone(), train.labels[: args.child].clone()
    del train
    if args.model == "reference":
        from kktexplain.models import load_reference_model

        model, _ = load_reference_model(progress=False)
    else:
        model = _small_model()
        model.load_state_dict(torch.load(args.weights, weights_only=True))
    gc.collect()
    load_peak = _status_mb("VmHWM")
    baseline = _status_mb()
    _reset_peak()
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.perf_counter(), _status_mb()))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    sampler.start()
    if args.gradients_only:
        gradient_pass(model, x, y, args, start, baseline)
        return
    sel = DeepSupportVectors(
        projection_dim=args.projection_dim,
        sketch=args.sketch,
        chunk_size=args.chunk_size,
        refit_dim=args.refit_dim,
        offload_dir=args.offload_dir,
        param_names=None,  # as recorded (on this MLP the same as the default "free")
        seed=0,
        progress=False,
    ).attribute(model, candidates=x, labels=y)
    done.set()
    sampler.join()
    grad_end = start + sel.settings["gradient_seconds"]
    grad_stage = [r for t, r in samples if t <= grad_end]
    solve_stage = [r for t, r in samples if t > grad_end]
    peak = _status_mb("VmHWM")
    out = {
        "n": args.child,
        "peak_rss_mb": peak,
        "ru_maxrss_mb": _maxrss_mb(resource.RUSAGE_SELF),
        "load_peak_rss_mb": load_peak,
        "baseline_rss_mb": baseline,
        "selection_mb": peak - baseline,
        "gradient_stage_peak_mb": max(grad_stage, default=float("nan")),
        "solve_stage_peak_mb": max(solve_stage, default=float("nan")),
        "g_matrix_mb": args.child * sel.settings["sketch_dim"] * 4 / 2**20,
        "gradient_seconds": sel.settings["gradient_seconds"],
        "seconds": sel.settings["seconds"],
        "solver": sel.settings["solver"],
        "n_support": int((sel.lambdas > 0).sum()),
        "stationarity_cosine": sel.kkt.stationarity["cosine"],
    }
    print("RESULT " + json.dumps(out, default=float), flush=True)


def gradient_pass(model, x, y, args, start: float, baseline: float) -> None:
    """Only selection's gradient pass (``gather_gradients``, sketched as selection does)."""
    from kktexplain._gather import gather_gradients
    from kktexplain.kkt import CountSketch, FunctionalModel, KKTObjective

    model.eval()
    fmodel = FunctionalModel(model)
    sketch = CountSketch(fmodel.num_params, args.projection_dim, seed=0)
    loss = KKTObjective.from_preset("default").loss_fn()
    grads, _ = gather_gradients(fmodel, x, y, loss, args.chunk_size, sketch, progress=False)
    peak = _status_mb("VmHWM")
    out = {
        "n": args.child,
        "peak_rss_mb": peak,
        "baseline_rss_mb": baseline,
        "gradient_pass_mb": peak - baseline,
        "g_matrix_mb": grads.numel() * grads.element_size() / 2**20,
        "seconds": time.perf_counter() - start,
    }
    print("RESULT " + json.dumps(out), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, nargs="+", default=[10_000, 30_000, 60_000])
    p.add_argument("--projection-dim", type=int, default=2048)
    p.add_argument("--chunk-size", type=int, default=256)
    p.add_argument("--sketch", choices=("count", "kronecker"), default="count")
    p.add_argument("--refit-dim", type=int, default=None, help="two-stage selection (e.g. 16384)")
    p.add_argument(
        "--offload-dir", default=None, help="keep the gradient matrix in a file in this folder (offload_dir=)"
    )
    p.add_argument(
        "--name", default=None, help="result file name (default select_rss or select_rss_gradients)"
    )
    p.add_argument("--model", choices=("small", "reference"), default="small")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument(
        "--small-cache",
        default="~/.cache/kktexplain/select_rss_mlp.pt",
        help="where the small model's weights are kept (trained once, about 1-6 minutes)",
    )
    p.add_argument(
        "--gradients-only",
        action="store_true",
        help="measure only the gradient pass (writes results/select_rss_gradients.json)",
    )
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--weights", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        child(args)
        return
    sys.path.insert(0, str(HERE))
    from _common import write_json

    rows, model_card = [], None
    weights = Path(args.small_cache).expanduser()
    if args.model == "small":
        card_path = weights.with_suffix(".json")
        if not (weights.is_file() and card_path.is_file()):
            weights.parent.mkdir(parents=True, exist_ok=True)
            card = {"architecture": "MLP(784 -> 32 -> 10)", **_train_small(weights)}
            card_path.write_text(json.dumps(card, indent=2))
        model_card = json.loads(card_path.read_text())
        print("small model", model_card, flush=True)
    for n in args.n:
        cmd = [sys.executable, __file__, "--child", str(n), "--weights", str(weights)]
        cmd += ["--projection-dim", str(args.projection_dim), "--chunk-size", str(args.chunk_size)]
        cmd += ["--model", args.model, "--threads", str(args.threads), "--sketch", args.sketch]
        cmd += [] if args.refit_dim is None else ["--refit-dim", str(args.refit_dim)]
        cmd += [] if args.offload_dir is None else ["--offload-dir", args.offload_dir]
        cmd += ["--gradients-only"] if args.gradients_only else []
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"child N={n} failed:\n{proc.stderr}")
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
        row = json.loads(line[len("RESULT ") :])
        row["children_maxrss_mb_so_far"] = _maxrss_mb(resource.RUSAGE_CHILDREN)
        rows.append(row)
        print(row, flush=True)
    if args.gradients_only:
        name = args.name or "select_rss_gradients"
        print(f"wrote {write_json(name, {'model': args.model, 'rows': rows})}")
        return
    first, last = rows[0], rows[-1]
    slope = (last["selection_mb"] - first["selection_mb"]) / max(last["n"] - first["n"], 1)
    path = write_json(
        args.name or "select_rss",
        {
            "model": args.model,
            "sketch": args.sketch,
            "refit_dim": args.refit_dim,
            "offload_dir": args.offload_dir,
            "model_card": model_card,
            "projection_dim": args.projection_dim,
            "chunk_size": args.chunk_size,
            "rows": rows,
            "selection_mb_per_1000_samples": 1000 * slope,
            "bytes_per_sample_per_sketch_dim": slope * 2**20 / args.projection_dim,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
