"""The audit report: one self-contained HTML page (plotly inlined) of a model's support vectors."""

from ._html import per_class_accuracy, write_html

__all__ = ["per_class_accuracy", "write_html"]
