"""``kktexplain distill``: a distilled training set from the user's model, optionally scored."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``distill`` verb on ``sub``."""
    from .._cli_options import _data_options, _model_options, _objective_option, _synthesis_options

    p = sub.add_parser(
        "distill",
        help="distil a small training set from your model with DSVs, and score it with fresh students",
        description=(
            "Synthesise IMAGES_PER_CLASS deep support vectors of every class and save them as a "
            "training set (DistilledSet.save, .npz). With --test-data, train fresh students on it "
            "under a fixed protocol (default: DC's ConvNet-3, 300 epochs) and report mean ± std "
            "test accuracy over --seeds; --baseline also scores random real samples (the same ones "
            "the DSVs start from with --init real)."
        ),
    )
    _model_options(p)
    _data_options(p, False, "labelled real samples (for --init real and --baseline)")
    p.add_argument("--images-per-class", type=int, default=10, help="DSVs per class (default 10)")
    p.add_argument(
        "--init",
        choices=("real", "noise", "other"),
        default="real",
        help="start from real samples of --data (default), Gaussian noise, or --other-data",
    )
    p.add_argument("--other-data", default=None, help="inputs of another dataset, for --init other")
    _synthesis_options(p)
    _objective_option(p)
    p.add_argument(
        "--input-shape", type=int, nargs="+", default=None, help="shape of one input, e.g. 1 28 28"
    )
    p.add_argument("--soft-labels", action="store_true", help="also store the teacher's probabilities")
    p.add_argument("--temperature", type=float, default=1.0, help="of the soft labels (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the synthesis (default 0)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.add_argument("--out", required=True, help="where to write the distilled set (.npz)")
    p.add_argument(
        "--test-data", default=None, help="labelled test samples: score the set with fresh students"
    )
    p.add_argument("--test-labels", default=None, help="a labels file for --test-data that carries none")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="student seeds (default 0 1 2)")
    p.add_argument(
        "--protocol",
        choices=("dc", "paper"),
        default="dc",
        help="student protocol (default dc: ConvNet-3, SGD)",
    )
    p.add_argument("--epochs", type=int, default=None, help="student epochs (default: the protocol's, 300)")
    p.add_argument(
        "--labels-used",
        choices=("auto", "hard", "soft"),
        default="auto",
        help="labels the students learn (default auto: soft when --soft-labels)",
    )
    p.add_argument("--baseline", action="store_true", help="also score random real samples of --data")
    p.add_argument("--json", default=None, help="write the summary (and scores) to this JSON file")


def _run(args: argparse.Namespace) -> int:
    from .._cli_io import load_data, load_model
    from .._cli_options import _synthesis_settings
    from . import StudentProtocol, distill, evaluate, random_real

    model = load_model(args.model, args.weights).to(args.device)
    real = load_data(args.data, args.labels, args.limit, args.grayscale) if args.data else None
    if real is not None and real[1] is None:
        raise ValueError("--data must carry labels (y in the .npz, a dataset, or --labels)")
    other = load_data(args.other_data, None, None, args.grayscale)[0] if args.other_data else None
    progress = not args.no_progress
    baseline = None
    if (args.init == "real" or args.baseline) and real is None:
        raise ValueError("--init real and --baseline need --data: labelled real samples")
    if real is not None:
        baseline = random_real(real, args.images_per_class, seed=args.seed)
    settings = _synthesis_settings(args)
    if args.init == "real":  # the DSVs start from exactly the baseline's images
        start = {"real": (baseline.inputs, baseline.labels)}
    elif args.init == "other":
        start = {"other": other}
    else:
        start = {}
    small = distill(
        model,
        args.images_per_class,
        init=args.init,
        soft_labels=args.soft_labels,
        temperature=args.temperature,
        seed=args.seed,
        input_shape=args.input_shape,
        progress=progress,
        **start,
        **settings,
    )
    path = small.save(args.out)
    summary = {"file": str(path), "n": len(small), "source": small.source, "kkt": small.info.get("kkt")}
    if args.test_data:
        test = load_data(args.test_data, args.test_labels, None, args.grayscale)
        if test[1] is None:
            raise ValueError("--test-data must carry labels (y in the .npz, a dataset, or --test-labels)")
        overrides = {} if args.epochs is None else {"epochs": args.epochs}
        protocol = StudentProtocol.from_preset(args.protocol, **overrides)
        scored = {"distilled": small}
        if args.baseline:
            scored["random_real"] = baseline
        summary["scores"] = {}
        for name, part in scored.items():
            ev = evaluate(part, test, seeds=args.seeds, protocol=protocol, labels=args.labels_used,
                          progress=progress)  # fmt: skip
            summary["scores"][name] = {"mean": ev.mean, "std": ev.std, "accuracies": list(ev.accuracies),
                                       "labels": ev.labels}  # fmt: skip
        summary["protocol"] = protocol.to_dict()
    text = json.dumps(summary, indent=2, default=str)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``kktexplain distill``; input errors print a message and return 2."""
    from .._cli_run import guarded

    return guarded("distill", _run)(args)
