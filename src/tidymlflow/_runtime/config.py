"""The validated configuration behind ``autolog()``."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from tidymlflow._jobs.names import PLOT_NAMES, clean_key, clean_value

BUILTIN_LAYERS = ("parsnip", "workflows", "recipes", "tune", "workflowsets")
_BOOL_FLAGS = ("log_outputs", "log_models", "log_datasets", "log_fold_runs", "pickle_workflows",
               "exclusive", "disable", "silent")


@dataclass(frozen=True)
class AutologConfig:
    """What autologging does; one immutable instance is active at a time."""

    layers: Mapping[str, bool] = field(default_factory=dict)
    log_outputs: bool = True
    log_plots: frozenset[str] = PLOT_NAMES
    plotly_js: str = "cdn"
    log_models: bool = False
    log_datasets: bool = True
    log_fold_runs: bool = False
    max_tuning_runs: int | None = 20
    plot_every_n_fits: int = 10
    pickle_workflows: bool = False
    extra_tags: Mapping[str, str] = field(default_factory=dict)
    registered_model_name: str | None = None
    exclusive: bool = False
    disable: bool = False
    silent: bool = False
    writer: str | None = None  # "process" / "inline"; None: TIDYMLFLOW_WRITER, else "process"

    def layer_enabled(self, name: str) -> bool:
        return not self.disable and self.layers.get(name, True)


def _require_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"autolog(): {name} must be True or False, got {type(value).__name__}")
    return value


def _plots(value: Any) -> frozenset[str]:
    if isinstance(value, bool):
        return PLOT_NAMES if value else frozenset()
    if isinstance(value, str) or not isinstance(value, Collection):
        raise TypeError("autolog(): log_plots must be True, False or a collection of plot names, "
                        f"got {type(value).__name__}")
    unknown = sorted(str(v) for v in value if v not in PLOT_NAMES)
    if unknown:
        raise ValueError(f"autolog(): log_plots has unknown plot name(s) {unknown}; "
                         f"valid names are {sorted(PLOT_NAMES)}")
    return frozenset(value)


def _max_runs(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"autolog(): max_tuning_runs must be an int or None, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"autolog(): max_tuning_runs must be >= 0, got {value}")
    return value


def _every(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"autolog(): plot_every_n_fits must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"autolog(): plot_every_n_fits must be >= 1 (1: every fit's plots), got {value}")
    return value


#: MLflow's limit on a tag value (``mlflow.utils.validation.MAX_TAG_VAL_LENGTH``), kept here so that
#: ``autolog()`` does not import MLflow.
MAX_TAG_VALUE = 8000


def _tags(value: Any) -> dict[str, str]:
    """extra_tags as MLflow accepts them: keys with invalid characters replaced by ``_`` and cut
    to 250 characters, values cut to MLflow's limit. Empty keys, MLflow's reserved ``mlflow.``
    keys, keys that clean to the same key and values without a string form are refused."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise TypeError("autolog(): extra_tags must be a dict with string keys")
    tags: dict[str, str] = {}
    for key, raw in value.items():
        if not key.strip():
            raise ValueError(f"autolog(): extra_tags has an empty key {key!r}")
        if key.startswith("mlflow."):
            raise ValueError(f"autolog(): extra_tags key {key!r} is reserved for MLflow's own tags "
                             "(name runs with mlflow.start_run(run_name=...))")
        try:
            text = raw if isinstance(raw, str) else str(raw)
        except Exception as exc:
            raise TypeError(f"autolog(): extra_tags[{key!r}] has no string form: "
                            f"{type(exc).__name__}: {exc}") from exc
        clean = clean_key(key)
        if clean in tags:
            raise ValueError(f"autolog(): extra_tags keys {key!r} and another both become {clean!r}")
        tags[clean] = clean_value(text, MAX_TAG_VALUE)
    return tags


def _model_name(value: Any, log_models: bool) -> str | None:
    """registered_model_name: a non-empty string, and only with log_models=True."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"autolog(): registered_model_name must be a non-empty string or None, got {value!r}")
    if not log_models:
        raise ValueError("autolog(): registered_model_name needs log_models=True (only logged models can be "
                         "registered)")
    return value


def _layer_flags(builtin: Mapping[str, Any], extra: Any, registered: Collection[str]) -> dict[str, bool]:
    flags = {name: _require_bool(name, value) for name, value in builtin.items()}
    if extra is None:
        return flags
    if not isinstance(extra, Mapping):
        raise TypeError(f"autolog(): layers must be a dict of {{name: bool}}, got {type(extra).__name__}")
    for name, value in extra.items():
        if name in BUILTIN_LAYERS:
            raise ValueError(f"autolog(): layers={{'{name}': ...}} names a built-in layer; "
                             f"use the {name}= flag")
        if name not in registered:
            raise ValueError(f"autolog(): layers names unknown layer '{name}'; "
                             f"registered layers are {sorted(registered)}")
        flags[name] = _require_bool(f"layers['{name}']", value)
    return flags


def build_config(flags: dict[str, Any], registered: Collection[str]) -> AutologConfig:
    """Validate ``autolog()``'s keyword arguments; raise TypeError/ValueError naming the flag."""
    for name in _BOOL_FLAGS:
        _require_bool(name, flags[name])
    if flags["plotly_js"] not in ("cdn", "embed"):
        raise ValueError(f"autolog(): plotly_js must be 'cdn' or 'embed', got {flags['plotly_js']!r}")
    if flags["writer"] not in (None, "process", "inline"):
        raise ValueError(f"autolog(): writer must be 'process' or 'inline', got {flags['writer']!r}")
    return AutologConfig(
        writer=flags["writer"],
        layers=_layer_flags({n: flags[n] for n in BUILTIN_LAYERS}, flags["layers"], registered),
        log_plots=_plots(flags["log_plots"]),
        plotly_js=flags["plotly_js"],
        max_tuning_runs=_max_runs(flags["max_tuning_runs"]),
        plot_every_n_fits=_every(flags["plot_every_n_fits"]),
        extra_tags=_tags(flags["extra_tags"]),
        registered_model_name=_model_name(flags["registered_model_name"], flags["log_models"]),
        **{name: flags[name] for name in _BOOL_FLAGS},
    )
