"""Stand-in tune_race_win_loss (``tune_grid`` bound by name in this module)."""

from py_tune.racing import race
from py_tune.tune import tune_grid


def tune_race_win_loss(workflow, resamples, grid=None, metrics=None, param_info=None,
                       eval_time=None, control=None):
    return race(tune_grid, workflow, resamples, grid, metrics, control, "race_win_loss")
