"""The error that stops a run at a NaN or an inf."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._result import DSVResult

__all__ = ["NonFiniteError", "candidate_rows_hint"]


class NonFiniteError(FloatingPointError):
    """A NaN or inf stopped synthesis (or selection, or a training run: ``stage``).

    Attributes
    ----------
    step : int
        The step (0-based) whose evaluation produced it; no update of that step was applied.
    term : str
        The loss term (a key of ``history``) or the gradient that was not finite.
    result : DSVResult or None
        The partial result of the last good state (after ``step`` steps), marked
        ``settings["partial"] = True``; that state is also in the checkpoint, if one was given.
    """

    def __init__(
        self,
        step: int,
        term: str,
        result: DSVResult | None = None,
        stage: str = "synthesis",
        hint: str | None = None,
    ) -> None:
        tail = (
            hint
            if hint is not None
            else f"the error's .result holds the state after the last good step ({step} steps done)"
            if stage == "synthesis"
            else "check the model's parameters and the inputs for NaN or inf"
        )
        unit = "epoch" if stage == "training" else "step"
        where = "" if stage == "selection" else f" at {unit} {step}"  # selection has no steps
        super().__init__(f"non-finite value (NaN or inf) in {term!r}{where}: {stage} stopped; {tail}")
        self.step, self.term, self.result = step, term, result


def candidate_rows_hint(what: str, rows: list[int]) -> str:
    """A :class:`NonFiniteError` hint naming the candidates whose ``what`` is NaN or inf."""
    more = " ..." if len(rows) > 10 else ""
    return (
        f"the model's {what} is NaN or inf on candidates rows {rows[:10]}{more} (the inputs "
        "themselves are finite); check the model's forward on them"
    )
