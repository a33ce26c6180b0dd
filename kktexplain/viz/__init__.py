"""Matplotlib figures: functions take ``ax=`` or ``fig=`` and return what they drew on."""

from ._figures import plot_dsv_grid, plot_history, plot_svm_2d, show_image

__all__ = ["plot_dsv_grid", "plot_history", "plot_svm_2d", "show_image"]
