"""tune layer. For now a guard: resampling and tuning calls own their call, so the per-fold fits
inside them never log. Their own runs arrive with the resampling and tuning issue."""

from __future__ import annotations

from tidymlflow.layer import Layer, Patch

_CALLS = (
    ("py_tune.tune", "fit_resamples"),
    ("py_tune.tune", "tune_grid"),
    ("py_tune.bayes", "tune_bayes"),
    ("py_tune.sim_anneal", "tune_sim_anneal"),
    ("py_tune.tune_race_anova", "tune_race_anova"),
    ("py_tune.tune_race_win_loss", "tune_race_win_loss"),
)

layer = Layer("tune", tuple(Patch(module, name, name, rebind=True) for module, name in _CALLS))
