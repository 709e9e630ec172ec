"""Stand-in for py_tune. As in the real package, ``py_tune.tune`` is the function."""

from .tune import (
    TuneParameter,
    TuneResults,
    finalize_workflow,
    fit_resamples,
    grid_random,
    grid_regular,
    tune,
    tune_grid,
)
from .bayes import BayesControl, control_bayes, tune_bayes
from .racing import RaceControl, control_race
from .sim_anneal import SimAnnealControl, control_sim_anneal, tune_sim_anneal
from .tune_race_anova import tune_race_anova
from .tune_race_win_loss import tune_race_win_loss

__version__ = "0.2.0"

__all__ = ["tune", "TuneParameter", "grid_regular", "grid_random", "fit_resamples",
           "tune_grid", "TuneResults", "finalize_workflow", "tune_bayes", "BayesControl",
           "control_bayes", "tune_sim_anneal", "SimAnnealControl", "control_sim_anneal",
           "tune_race_anova", "tune_race_win_loss", "RaceControl", "control_race"]
