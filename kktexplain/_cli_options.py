"""The command line's shared options: model, data, objective, synthesis and scope flags.

Each ``_*_options(parser)`` adds a group of flags to a verb's parser; ``_synthesis_settings`` and
``_param_names`` read them back. Used by :mod:`kktexplain._cli_verbs`, :mod:`kktexplain.cli` and
:mod:`kktexplain.distill._cli`.
"""

from __future__ import annotations

import argparse

__all__ = ["cli_message", "positive_int", "torch_device"]

_MODEL_HELP = (
    "the model: module:factory (a module importable from the current directory, or a path to a "
    ".py file, and a callable returning the nn.Module) or a TorchScript file (.pt)"
)
_DATA_HELP = (
    "data: an .npz with arrays x (inputs) and y (labels), an .npy, an IDX file (8-bit values "
    "scaled to [0, 1]), a folder of class sub-folders of images (torchvision ImageFolder), or "
    "module:function returning a Dataset, a DataLoader, (x, y) or x"
)


def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an int >= 1 (``--limit 0`` or ``-5`` is a usage error, not a silent slice)."""
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type: an int >= 0 (a count where 0 means none)."""
    return _int_at_least(text, 0, "an integer >= 0")


def torch_device(text: str) -> str:
    """argparse type: a device torch knows and this machine has (``cpu``, ``cuda``, ``cuda:1``)."""
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"not a torch device: {text!r} (e.g. cpu, cuda, cuda:1)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: torch finds no CUDA device on this machine; use cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(
            f"{text!r}: this machine has {torch.cuda.device_count()} CUDA devices"
        )
    return text


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help=_MODEL_HELP)
    p.add_argument(
        "--weights",
        default=None,
        help="weights for a module:factory model: a .safetensors file, or a state dict saved with "
        "torch.save (read with torch.load(weights_only=True))",
    )
    p.add_argument(
        "--device",
        default="cpu",
        type=torch_device,
        help="torch device to compute on, e.g. cpu or cuda (default cpu)",
    )


def _data_options(p: argparse.ArgumentParser, required: bool, what: str) -> None:
    p.add_argument("--data", required=required, help=f"{what}; {_DATA_HELP}")
    _reading_options(p, "--data")


def _reading_options(p: argparse.ArgumentParser, option: str) -> None:
    """``--labels``, ``--limit`` and ``--grayscale``: how the data of ``option`` are read."""
    p.add_argument(
        "--labels", default=None, help=f"a labels file (IDX or .npy) for {option} that carries no labels"
    )
    p.add_argument(
        "--limit", type=positive_int, default=None, help=f"use only the first N samples of {option}"
    )
    p.add_argument(
        "--grayscale",
        action="store_true",
        help=f"read an image folder of {option} as one channel (default RGB)",
    )


def _objective_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--objective",
        default="default",
        choices=("default", "paper_eq9", "paper_alg1", "per_tensor"),
        help="preset of the DeepKKT objective (default: default)",
    )


def _synthesis_options(p: argparse.ArgumentParser) -> None:
    """Options of a synthesis run shared by ``synthesize`` and ``distill`` (read by
    :func:`_synthesis_settings`)."""
    p.add_argument("--steps", type=int, default=None, help="optimisation steps (default 300; 60 for real)")
    p.add_argument("--lr", type=float, default=None, help="step on the inputs (default 0.05; 0.01 for real)")
    p.add_argument(
        "--input-range",
        type=float,
        nargs=2,
        default=None,
        metavar=("LOW", "HIGH"),
        help="clamp the inputs into [LOW, HIGH] after every step",
    )
    p.add_argument("--no-augmentation", action="store_true", help="no augmented view (default: the paper's)")


def _synthesis_settings(args: argparse.Namespace) -> dict:
    """The DeepSupportVectors settings of :func:`_synthesis_options` and :func:`_objective_option`."""
    return {
        "objective": args.objective,
        "augmentation": None if args.no_augmentation else "default",
        "steps": args.steps,
        "lr": args.lr,
        "input_range": None if args.input_range is None else tuple(args.input_range),
    }


def _common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--input-shape",
        type=int,
        nargs="+",
        default=None,
        help="shape of one input, e.g. 1 28 28 (default: read from the model or the data)",
    )
    p.add_argument(
        "--param-names",
        nargs="+",
        default=["free"],
        help="parameters stationarity is measured on, e.g. fc.weight fc.bias; 'free': all "
        "outside scale-invariant modules (the default); 'all': every parameter (the paper's)",
    )
    _objective_option(p)
    p.add_argument(
        "--lambda-max", type=float, default=None, help="upper bound C on every multiplier (default none)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--out", required=True, help="result file to write with DSVResult.save (.npz)")


def _param_names(names: list[str] | None) -> list[str] | str | None:
    """``--param-names``: a list of names, or one of the words ``free`` and ``all`` (``None``)."""
    if names is None or names == ["all"]:
        return None
    return "free" if names == ["free"] else names


# verbs whose --out is a folder (the others write one file)
_FOLDER_OUT = ("explain", "demo", "evaluate")


def check_outputs(args: argparse.Namespace) -> None:
    """Check a verb's ``--out`` and ``--json`` before it runs, and that ``--checkpoint`` is another
    file than ``--out`` (``ValueError`` naming the options)."""
    from ._io import check_output_file, check_output_folder, npz_path

    for option in ("out", "json"):
        value = getattr(args, option, None)
        if value is None:
            continue
        if option == "out" and args.verb in _FOLDER_OUT:
            check_output_folder(value, "--out")
        else:
            check_output_file(value, f"--{option}")
    checkpoint, out = getattr(args, "checkpoint", None), getattr(args, "out", None)
    # both are written with .npz appended: "run" and "run.npz" are one file
    if checkpoint and out and npz_path(checkpoint).resolve() == npz_path(out).resolve():
        raise ValueError(
            f"--checkpoint and --out are the same file {str(npz_path(out))!r}: the result would "
            "overwrite the state a run resumes from; pass two different paths"
        )


# the library's parameter names that a command-line user knows as options
_OPTION_NAMES = {
    "input_shape": "--input-shape",
    "param_names": "--param-names",
    "per_page": "--per-page",
    "class_names": "--class-names",
    "n_per_class": "--n-per-class",
    "target": "--target",
}


def cli_message(error: BaseException) -> str:
    """An error's message in the command line's words: a leading parameter name becomes its
    option (``input_shape must ...`` -> ``--input-shape must ...``), and
    ``input_shape=(C, H, W)`` becomes ``--input-shape C H W``.

    Parameters
    ----------
    error : BaseException

    Returns
    -------
    str
    """
    text = str(error).replace("pass input_shape=(C, H, W)", "pass --input-shape C H W")
    first, sep, rest = text.partition(" ")
    if first in _OPTION_NAMES and sep:
        text = f"{_OPTION_NAMES[first]} {rest}"
    return text
