"""The built-in datasets of the sanity check, and a runner over them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from sklearn import datasets as skd
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from ._sanity import sanity_check

__all__ = ["SANITY_DATASETS", "run_sanity_suite"]


def _std(x):
    return StandardScaler().fit_transform(x)


def _pair(loader, a: int, b: int, standardize: bool = True):
    bunch = loader()
    keep = np.isin(bunch.target, [a, b])
    x = bunch.data[keep]
    return (_std(x) if standardize else x), bunch.target[keep]


SANITY_DATASETS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "breast_cancer": lambda: (_std(skd.load_breast_cancer().data), skd.load_breast_cancer().target),
    "iris_setosa_vs_versicolor": lambda: _pair(skd.load_iris, 0, 1),
    "iris_versicolor_vs_virginica": lambda: _pair(skd.load_iris, 1, 2),
    "wine_0_vs_1": lambda: _pair(skd.load_wine, 0, 1),
    "digits_3_vs_8": lambda: _pair(skd.load_digits, 3, 8, standardize=False),
    "two_moons": lambda: (lambda xy: (_std(xy[0]), xy[1]))(skd.make_moons(200, noise=0.1, random_state=0)),
    "gaussian_blobs": lambda: (lambda xy: (_std(xy[0]), xy[1]))(
        skd.make_blobs(200, centers=2, cluster_std=1.0, random_state=0)
    ),
}


def run_sanity_suite(
    Cs: Sequence[float] = (0.1, 1.0, 10.0),
    weights: str = "svc",
    synth_steps: int = 3000,
    synth_lr: float | None = None,
    synth_optimizer: str = "sgd",
    datasets: Sequence[str] | None = None,
    progress: bool = False,
) -> list[dict]:
    """Run :func:`sanity_check` on every built-in dataset at every ``C``.

    Parameters
    ----------
    Cs : sequence of float, default=(0.1, 1.0, 10.0)
    weights : {"svc", "torch"}, default="svc"
    synth_steps : int, default=3000
    synth_lr : float, optional
        See :func:`sanity_check` (by default scaled to each problem).
    synth_optimizer : {"sgd", "adam"}, default="sgd"
    datasets : sequence of str, optional
        Keys of ``SANITY_DATASETS``; all by default. ``digits_3_vs_8`` uses raw pixels scaled by
        1/16; the others are standardised.
    progress : bool, default=False
        A progress bar over the (dataset, C) cases.

    Returns
    -------
    list of dict
        One row per (dataset, C): the fields of :class:`SanityResult` plus ``dataset``.
    """
    names = list(datasets or SANITY_DATASETS)
    rows = []
    with tqdm(total=len(names) * len(Cs), desc="sanity check", disable=not progress) as bar:
        for name in names:
            x, y = SANITY_DATASETS[name]()
            if name == "digits_3_vs_8":
                x = x / 16.0
            for C in Cs:
                bar.set_postfix(dataset=name, C=C)
                result = sanity_check(
                    x,
                    y,
                    C=C,
                    weights=weights,
                    synth_steps=synth_steps,
                    synth_lr=synth_lr,
                    synth_optimizer=synth_optimizer,
                )
                rows.append({"dataset": name, **result.to_dict()})
                bar.update(1)
    return rows
