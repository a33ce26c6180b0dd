"""scikit-learn's parameter protocol for settings-only classes: ``get_params``, ``set_params``,
a ``repr`` of the settings that differ from the defaults."""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["SettingsMixin"]


class SettingsMixin:
    """``get_params`` / ``set_params`` / ``repr`` read from the constructor's signature.

    The constructor stores every argument under its own name and checks nothing (scikit-learn's
    convention); subclasses may refuse a value early in :meth:`_check_setting`.
    """

    @classmethod
    def _param_names(cls) -> list[str]:
        return [k for k in inspect.signature(cls.__init__).parameters if k != "self"]

    def _check_setting(self, name: str, value: Any) -> None:
        """Refuse a value in ``set_params`` (nothing by default)."""

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's settings, as given (scikit-learn's ``get_params``).

        Parameters
        ----------
        deep : bool, default=True
            Also list the parameters of settings that have ``get_params`` (as
            ``"name__param"``), as scikit-learn does.

        Returns
        -------
        dict of str to Any
        """
        params = {k: getattr(self, k) for k in self._param_names()}
        if deep:
            for k, v in list(params.items()):
                if hasattr(v, "get_params") and not isinstance(v, type):
                    params.update({f"{k}__{sub}": sv for sub, sv in v.get_params().items()})
        return params

    def set_params(self, **params: Any):
        """Set settings by name (scikit-learn's ``set_params``); nothing is checked until used.

        Parameters
        ----------
        **params
            Constructor arguments, or ``"name__param"`` for a setting that has ``set_params``.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            For a name that is not a parameter of the constructor.
        """
        valid = self._param_names()
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in valid:
                raise ValueError(
                    f"invalid parameter {name!r} for {type(self).__name__}; valid parameters are {valid}"
                )
            if sub:
                inner = getattr(self, name)
                if not hasattr(inner, "set_params"):
                    raise ValueError(f"invalid parameter {key!r}: {name} has no set_params")
                inner.set_params(**{sub: value})
            else:
                self._check_setting(name, value)
                setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        """``Name(name=value, ...)`` with the settings that differ from the defaults."""
        defaults = {
            k: p.default for k, p in inspect.signature(type(self).__init__).parameters.items() if k != "self"
        }
        shown = []
        for k, default in defaults.items():
            v = getattr(self, k)
            try:
                same = v is default or bool(v == default)
            except Exception:  # tensors, arrays: always shown
                same = False
            if not same:
                shown.append(f"{k}={v!r}")
        return f"{type(self).__name__}({', '.join(shown)})"
