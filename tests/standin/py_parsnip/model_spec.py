"""Stand-in ModelSpec / ModelFit / NestedModelFit with the real library's signatures."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Optional

import pandas as pd

from py_parsnip import _engines, _frames


@dataclass(frozen=True)
class ModelSpec:
    model_type: str
    engine: str = "sklearn"
    mode: str = "unknown"
    args: Dict[str, Any] = field(default_factory=dict)
    date_col: Optional[str] = None

    def set_engine(self, engine: str, **engine_args) -> "ModelSpec":
        return replace(self, engine=engine, args={**self.args, **engine_args})

    def set_mode(self, mode: str) -> "ModelSpec":
        return replace(self, mode=mode)

    def set_args(self, **kwargs) -> "ModelSpec":
        date_col = kwargs.pop("date_col", None)
        new = replace(self, args={**self.args, **kwargs})
        return replace(new, date_col=date_col) if date_col is not None else new

    def fit(self, data: pd.DataFrame, formula: Optional[str] = None,
            original_training_data: Optional[pd.DataFrame] = None,
            date_col: Optional[str] = None) -> "ModelFit":
        engine = _engines.get_engine(self.model_type, self.engine)
        if hasattr(engine, "fit_raw"):
            fit_data, blueprint = engine.fit_raw(self, data, formula,
                                                 date_col=date_col or self.date_col)
        else:
            if formula is None:
                raise ValueError("Either provide a formula or pass MoldedData directly")
            molded = _engines.mold(_engines.expand_formula(formula, data), data)
            orig = original_training_data if original_training_data is not None else data
            fit_data = engine.fit(self, molded, original_training_data=orig)
            blueprint = molded.blueprint
        return ModelFit(spec=self, fit_data=fit_data, blueprint=blueprint)

    def fit_nested(self, data: pd.DataFrame, formula: str, group_col: str,
                   original_training_data: Optional[pd.DataFrame] = None,
                   date_col: Optional[str] = None) -> "NestedModelFit":
        if group_col not in data.columns:
            raise ValueError(f"Group column '{group_col}' not found in data")
        groups = data[group_col].unique()
        if len(groups) == 1:
            warnings.warn(f"Only one group found in '{group_col}'.", UserWarning)
        group_fits, group_train = {}, {}
        for g in groups:
            gd = data[data[group_col] == g].copy()
            group_train[g] = gd.copy()
            group_fits[g] = self.fit(gd.drop(columns=[group_col]), formula,
                                     original_training_data=original_training_data,
                                     date_col=date_col)
        return NestedModelFit(spec=self, group_col=group_col, group_fits=group_fits,
                              formula=formula, group_train_data=group_train)

    def fit_global(self, data: pd.DataFrame, formula: str, group_col: str,
                   original_training_data: Optional[pd.DataFrame] = None,
                   date_col: Optional[str] = None) -> "ModelFit":
        if group_col not in data.columns:
            raise ValueError(f"Group column '{group_col}' not found in data")
        lhs, rhs = (s.strip() for s in formula.split("~", 1))
        terms = [t.strip() for t in rhs.split("+")]
        if group_col not in terms and rhs != ".":
            formula = f"{lhs} ~ {rhs} + {group_col}"
        return self.fit(data, formula, original_training_data=original_training_data,
                        date_col=date_col)


@dataclass
class ModelFit:
    spec: ModelSpec
    fit_data: Dict[str, Any]
    blueprint: Any
    fit_time: Optional[float] = None
    evaluation_data: Dict[str, Any] = field(default_factory=dict)
    model_name: Optional[str] = None
    model_group_name: Optional[str] = None

    def predict(self, new_data: pd.DataFrame, type: str = "numeric") -> pd.DataFrame:
        engine = _engines.get_engine(self.spec.model_type, self.spec.engine)
        if hasattr(engine, "predict_raw"):
            return engine.predict_raw(self, new_data, type=type)
        return engine.predict(self, _engines.forge(new_data, self.blueprint), type=type)

    def extract_fit_engine(self) -> Any:
        return self.fit_data.get("model")

    def evaluate(self, test_data: pd.DataFrame, outcome_col: Optional[str] = None,
                 original_test_data: Optional[pd.DataFrame] = None) -> "ModelFit":
        if outcome_col is None:
            bp = self.blueprint
            outcome_col = bp["outcome_name"] if isinstance(bp, dict) else bp.roles["outcome"][0]
        preds = self.predict(test_data)
        self.evaluation_data = {"test_data": test_data, "test_predictions": preds,
                                "outcome_col": outcome_col, "original_test_data": original_test_data}
        return self

    def extract_outputs(self):
        engine = _engines.get_engine(self.spec.model_type, self.spec.engine)
        return _frames.build_outputs(self, getattr(engine, "resid_is_actuals", False))


@dataclass
class NestedModelFit:
    spec: ModelSpec
    group_col: str
    group_fits: Dict[Any, ModelFit]
    formula: str
    group_train_data: Dict[Any, pd.DataFrame] = field(default_factory=dict)

    def predict(self, new_data: pd.DataFrame, type: str = "numeric") -> pd.DataFrame:
        parts = []
        for g, d in new_data.groupby(self.group_col, sort=False):
            if g not in self.group_fits:
                raise ValueError(f"group '{g}' was not seen in training")
            p = self.group_fits[g].predict(d.drop(columns=[self.group_col]), type=type)
            p[self.group_col] = g
            parts.append(p.reset_index(drop=True))
        return pd.concat(parts, ignore_index=True)

    def evaluate(self, test_data: pd.DataFrame, outcome_col: Optional[str] = None) -> "NestedModelFit":
        for g, d in test_data.groupby(self.group_col, sort=False):
            if g in self.group_fits:
                self.group_fits[g].evaluate(d.drop(columns=[self.group_col]), outcome_col)
        return self

    def extract_outputs(self):
        per_group = {g: f.extract_outputs() for g, f in self.group_fits.items()}
        return _frames.combine_nested(self.group_col, per_group, set_group=False)
