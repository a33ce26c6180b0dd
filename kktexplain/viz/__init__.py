"""Matplotlib figures: functions take ``ax=`` or ``fig=`` and return what they drew on."""

from ._audit import (
    FEASIBILITY_THRESHOLDS,
    STATIONARITY_THRESHOLDS,
    class_lambda_sums,
    feasibility_verdict,
    plot_dsv_gallery,
    plot_kkt_residuals,
    plot_lambda_vs_accuracy,
    plot_likely_mislabels,
    plot_synthesis_history,
    plot_top_bottom_lambda,
    stationarity_verdict,
)
from ._figures import plot_dsv_grid, plot_history, plot_svm_2d, show_image
from ._generate import plot_blend_matrix, plot_class_samples, plot_edits, plot_interpolation

__all__ = [
    "FEASIBILITY_THRESHOLDS",
    "STATIONARITY_THRESHOLDS",
    "class_lambda_sums",
    "feasibility_verdict",
    "plot_blend_matrix",
    "plot_class_samples",
    "plot_dsv_gallery",
    "plot_dsv_grid",
    "plot_edits",
    "plot_history",
    "plot_interpolation",
    "plot_kkt_residuals",
    "plot_lambda_vs_accuracy",
    "plot_likely_mislabels",
    "plot_svm_2d",
    "plot_synthesis_history",
    "plot_top_bottom_lambda",
    "show_image",
    "stationarity_verdict",
]
