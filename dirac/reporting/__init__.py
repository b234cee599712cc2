"""Reporting: results tables, perception–distortion curves, sweep summaries and image grids (SPEC §1.3b, §4)."""

from dirac.reporting.comparison import log_pd_scatter, scatter_figure, write_pd_scatter
from dirac.reporting.curves import combine_sweep, log_pd_curve, perception_key, write_learning_curve, write_pd_curve
from dirac.reporting.images import image_grid, log_images, save_grid, save_png
from dirac.reporting.rate import log_rate_curves, write_rate_curves
from dirac.reporting.tables import METRIC_ORDER, read_results, results_table, write_results

__all__ = [
    "METRIC_ORDER", "combine_sweep", "image_grid", "log_images", "log_pd_curve", "perception_key", "read_results",
    "results_table", "save_grid", "save_png", "write_learning_curve", "write_pd_curve", "write_results",
    "log_pd_scatter", "scatter_figure", "write_pd_scatter", "log_rate_curves", "write_rate_curves",
]
