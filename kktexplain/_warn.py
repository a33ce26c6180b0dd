"""Warnings attributed to the user's line, however deep in the package they are raised."""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["warn_user"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_WRAPPERS = (os.path.join("torch", "utils", "_contextlib.py"), os.path.join("contextlib.py"))


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the caller of the outermost kktexplain frame (the
    user's line; wrappers in between, such as torch's ``no_grad`` decorator, are passed).

    Parameters
    ----------
    message : str
    category : type of Warning, default=UserWarning
    """
    files = []
    frame = sys._getframe(1)
    while frame is not None:
        files.append(os.path.abspath(frame.f_code.co_filename))
        frame = frame.f_back
    ours = [i for i, f in enumerate(files) if f.startswith(_PACKAGE)]
    caller = ours[-1] + 1 if ours else 0
    while caller < len(files) - 1 and files[caller].endswith(_WRAPPERS):
        caller += 1  # a decorator's frame around the package's entry point
    warnings.warn(message, category, stacklevel=caller + 2)
