"""The audit report: one self-contained HTML page (plotly inlined) of a model's support vectors."""

from ._accuracy import per_class_accuracy
from ._html import write_html

__all__ = ["per_class_accuracy", "write_html"]
