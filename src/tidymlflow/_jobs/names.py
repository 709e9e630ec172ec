"""Names and values as MLflow stores them, and the tags, variables and plot names both sides
agree on.

The user's side cleans keys when it records them; the writer cuts values to MLflow's limits when
it writes them. No MLflow here (its limits are passed in)."""

from __future__ import annotations

import re
from typing import Any

#: MLflow's own tags that tidymlflow sets.
AUTOLOG_TAG = "mlflow.autologging"
PARENT_TAG = "mlflow.parentRunId"

#: MLflow's context tags that say where a run comes from (script, user, git): computed by the
#: script's own process and carried by its jobs, never taken from the writer's context (the user
#: is, when it is the script's tracking username: that is read from the script's environment).
PROVENANCE_TAGS = frozenset({"mlflow.source.name", "mlflow.source.type", "mlflow.user",
                             "mlflow.source.git.commit", "mlflow.source.git.branch",
                             "mlflow.source.git.repoURL"})

#: Credentials: in the environment of whoever writes a job, never in a job on disk.
SECRETS = frozenset({"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"})
#: The environment variables a job carries with it: the writer sets exactly these (and removes
#: those the job does not have) while it writes the job; the credentials among them are the
#: writer's own.
ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_TRACKING_USERNAME",
       "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_INSECURE_TLS",
       "MLFLOW_RUN_CONTEXT")

#: The plots of the gallery (docs/contract.md, "Plots"): what ``log_plots`` may name and a job may
#: ask the writer to draw.
PLOT_NAMES: frozenset[str] = frozenset({
    "residual_diagnostics", "forecast", "decomposition", "pca_scree", "feature_correlation",
    "cv_folds", "parameter_sensitivity", "parallel_coordinates", "workflow_comparison",
    "cv_stability", "per_group_heatmap", "coefficient_variation",
})
#: Plots drawn with plotly and saved as html; every other plot is a matplotlib png.
INTERACTIVE: frozenset[str] = frozenset({"forecast", "parallel_coordinates"})

#: HTTP settings of the writer (unless the script set them): short, so that a dead server is
#: known in seconds, not minutes.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}

_BAD_KEY_CHARS = re.compile(r"[^/\w.\- :]")


def clean_key(key: str) -> str:
    """Return an MLflow-valid param/metric/tag key close to ``key`` (at most 250 characters)."""
    key = _BAD_KEY_CHARS.sub("_", str(key))
    parts = [p if p not in ("", ".", "..") else "_" for p in key.split("/")]
    return "/".join(parts)[:250] or "_"


def clean_value(value: Any, limit: int) -> str:
    """Return ``value`` as a string cut to ``limit`` characters, marking a cut with an ellipsis."""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
