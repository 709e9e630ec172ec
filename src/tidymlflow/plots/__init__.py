"""Plot names of the run layout contract (spec section 4); drawing arrives with the plot gallery."""

from __future__ import annotations

PLOT_NAMES: frozenset[str] = frozenset({
    "residual_diagnostics", "forecast", "decomposition", "pca_scree", "feature_correlation",
    "cv_folds", "parameter_sensitivity", "parallel_coordinates", "workflow_comparison",
    "cv_stability", "per_group_heatmap", "coefficient_variation",
})
