"""Formula molding and the stand-in engines (sklearn / numpy based)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps


def _date_column(df: pd.DataFrame):
    for c in df.columns:
        if pd.api.types.is_datetime64_any_dtype(df[c]):
            return c
    return None


def _term(t: str) -> str:
    m = re.fullmatch(r'Q\("(.+)"\)', t.strip())
    return m.group(1) if m else t.strip()


def expand_formula(formula: str, data: pd.DataFrame) -> str:
    lhs, rhs = (s.strip() for s in formula.split("~", 1))
    if rhs == "." or rhs.startswith(". +") or " + ." in rhs:
        cols = [c for c in data.columns
                if c != lhs and not pd.api.types.is_datetime64_any_dtype(data[c])]
        extra = [t.strip() for t in rhs.split("+") if t.strip() != "."]
        rhs = " + ".join(extra + cols) if rhs != "." else " + ".join(cols)
    return f"{lhs} ~ {rhs}"


@dataclass(frozen=True)
class Blueprint:
    """Like py_hardhat's Blueprint: the formula, roles, factor levels, the training frame's
    dtypes and patsy's DesignInfo. That DesignInfo refuses pickling (patsy raises
    NotImplementedError), so a formula-molded fit does not pickle, as in the real library."""

    formula: str
    roles: dict
    factor_levels: dict = field(default_factory=dict)
    columns: list = field(default_factory=list)
    ptypes: dict = field(default_factory=dict)
    design_info: Any = None


@dataclass
class MoldedData:
    predictors: pd.DataFrame
    outcomes: pd.DataFrame
    blueprint: Blueprint
    extras: dict = field(default_factory=dict)


def _without_intercept(X: pd.DataFrame) -> pd.DataFrame:
    # the stand-in engines fit their own intercept
    return X.drop(columns=["Intercept"]) if "Intercept" in X.columns else X


def mold(formula: str, data: pd.DataFrame) -> MoldedData:
    """patsy.dmatrices, as py_hardhat.mold does; the DesignInfo goes on the blueprint."""
    import patsy

    lhs, rhs = (s.strip() for s in formula.split("~", 1))
    try:
        y_mat, X_mat = patsy.dmatrices(formula, data, return_type="dataframe", NA_action="raise")
    except Exception as exc:
        raise ValueError(f"Failed to parse formula '{formula}': {exc}") from exc
    X = _without_intercept(X_mat)
    terms = [_term(t) for t in rhs.split("+") if t.strip()]
    # as py_hardhat: every text / categorical column of the frame, used by the formula or not
    levels = {c: sorted(data[c].astype(str).unique()) for c in data.columns
              if pd.api.types.is_object_dtype(data[c]) or pd.api.types.is_string_dtype(data[c])
              or isinstance(data[c].dtype, pd.CategoricalDtype)}
    bp = Blueprint(formula, {"outcome": [lhs], "predictor": terms}, levels, list(X.columns),
                   {c: str(data[c].dtype) for c in data.columns}, X_mat.design_info)
    # an object-dtype outcome: patsy makes it categorical; the stand-in keeps its numbers and
    # flags it, so that extract_outputs fails as the real library's does
    categorical = len(y_mat.columns) > 1 or not pd.api.types.is_numeric_dtype(data[lhs])
    return MoldedData(X, data[[lhs]].astype(float), bp,
                      extras={"outcome_categorical": True} if categorical else {})


def forge(new_data: pd.DataFrame, blueprint: Blueprint) -> MoldedData:
    """patsy.build_design_matrices with the stored DesignInfo, as py_hardhat.forge does."""
    import patsy

    _validate_columns(new_data, blueprint)
    for col, levels in blueprint.factor_levels.items():
        if col in new_data.columns:
            new = set(new_data[col].astype(str).unique()) - set(levels)
            if new:
                raise ValueError(f"New factor levels found in '{col}': {new}. "
                                 f"Expected levels: {set(levels)}")
    try:
        (X,) = patsy.build_design_matrices([blueprint.design_info], new_data,
                                           return_type="dataframe", NA_action="raise")
    except Exception as exc:
        raise ValueError(f"Failed to apply blueprint to new data: {exc}") from exc
    lhs = blueprint.roles["outcome"][0]
    y = new_data[[lhs]] if lhs in new_data.columns else None
    return MoldedData(_without_intercept(X)[blueprint.columns], y, blueprint)


def _validate_columns(new_data: pd.DataFrame, blueprint: Blueprint) -> None:
    """As py_hardhat's forge: every base column of the formula's right side, and every text
    column the training frame had (its factor levels), must be in ``new_data``, whether the
    formula uses it or not; the outcome need not be."""
    import re

    rhs = blueprint.formula.split("~", 1)[-1]
    rhs = re.sub(r"[\"'].*?[\"']", "", rhs)
    names = set(re.findall(r"\b([a-z_][a-z0-9_]*)\b", rhs, re.IGNORECASE)) - {"I", "C", "Q", "T", "np"}
    outcome = {c.split("[")[0] for c in blueprint.roles.get("outcome", [])}
    required = names | (set(blueprint.factor_levels) - outcome)
    missing = required - set(new_data.columns)
    if missing:
        raise ValueError(f"Required base columns missing from new_data: {missing}. "
                         f"Available columns: {list(new_data.columns)}")


def _ols_table(X: np.ndarray, y: np.ndarray, coef: np.ndarray, names: list) -> pd.DataFrame:
    Xd = np.column_stack([np.ones(len(X)), X])
    resid = y - Xd @ coef
    dof = max(len(y) - Xd.shape[1], 1)
    sigma2 = resid @ resid / dof
    cov = sigma2 * np.linalg.pinv(Xd.T @ Xd)
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = coef / se
    p = 2 * sps.t.sf(np.abs(t), dof)
    q = sps.t.ppf(0.975, dof)
    return pd.DataFrame({"variable": ["Intercept"] + names, "coefficient": coef, "std_error": se,
                         "t_stat": t, "p_value": p, "vif": np.nan,
                         "ci_0.025": coef - q * se, "ci_0.975": coef + q * se})


class _MoldedEngine:
    resid_is_actuals = False

    def _store(self, spec, molded, original_training_data, model, fitted, coefs, extra=()):
        orig = original_training_data if original_training_data is not None else molded.predictors
        dcol = _date_column(orig)
        return {"model": model, "y_train": molded.outcomes.iloc[:, 0].to_numpy(float),
                "fitted": np.asarray(fitted, float), "formula": molded.blueprint.formula,
                "coefficients": coefs, "n_params": molded.predictors.shape[1],
                "dates": orig[dcol].to_numpy() if dcol else None, "date_col": dcol,
                "extra_stats": list(extra), "original_training_data": orig,
                "outcome_categorical": molded.extras.get("outcome_categorical", False)}


class LinearRegEngine(_MoldedEngine):
    def __init__(self, engine: str):
        self.engine = engine

    def fit(self, spec, molded, original_training_data=None):
        from sklearn.linear_model import ElasticNet, LinearRegression, Ridge

        X, y = molded.predictors.to_numpy(float), molded.outcomes.iloc[:, 0].to_numpy(float)
        penalty = spec.args.get("penalty")
        if penalty is None or self.engine == "statsmodels":
            model = LinearRegression().fit(X, y)
        elif spec.args.get("mixture") in (None, 0, 0.0):
            model = Ridge(alpha=float(penalty)).fit(X, y)
        else:
            model = ElasticNet(alpha=float(penalty), l1_ratio=float(spec.args["mixture"])).fit(X, y)
        coef = np.concatenate([[model.intercept_], np.atleast_1d(model.coef_)])
        names = list(molded.predictors.columns)
        table = _ols_table(X, y, coef, names)
        if penalty is not None and self.engine != "statsmodels":
            table[["std_error", "t_stat", "p_value", "ci_0.025", "ci_0.975"]] = np.nan
        extra = []
        if self.engine == "statsmodels":
            n, k = len(y), X.shape[1] + 1
            rss = float(np.sum((y - model.predict(X)) ** 2))
            ll = -n / 2 * (np.log(2 * np.pi * rss / n) + 1)
            extra = [("aic", 2 * k - 2 * ll), ("bic", k * np.log(n) - 2 * ll), ("log_likelihood", ll)]
        return self._store(spec, molded, original_training_data, model, model.predict(X), table, extra)

    def predict(self, fit, forged, type="numeric"):
        X = forged.predictors.to_numpy(float)
        pred = fit.fit_data["model"].predict(X)
        out = pd.DataFrame({".pred": pred})
        if type == "conf_int":
            if self.engine != "statsmodels":
                raise ValueError("conf_int predictions are not supported by the sklearn engine")
            resid = fit.fit_data["y_train"] - fit.fit_data["fitted"]
            half = 1.96 * resid.std(ddof=1)
            out[".pred_lower"], out[".pred_upper"] = pred - half, pred + half
        elif type not in ("numeric",):
            raise ValueError(f"prediction type '{type}' not supported")
        return out


class RandForestEngine(_MoldedEngine):
    resid_is_actuals = True  # the real library's train-split residuals bug

    def fit(self, spec, molded, original_training_data=None):
        from sklearn.ensemble import RandomForestRegressor

        if spec.mode != "regression":
            raise ValueError("rand_forest mode is 'unknown'; call set_mode('regression')")
        X, y = molded.predictors.to_numpy(float), molded.outcomes.iloc[:, 0].to_numpy(float)
        model = RandomForestRegressor(n_estimators=int(spec.args.get("trees", 100)),
                                      min_samples_leaf=int(spec.args.get("min_n", 1)),
                                      random_state=0).fit(X, y)
        table = pd.DataFrame({"variable": list(molded.predictors.columns),
                              "coefficient": model.feature_importances_})
        extra = [("n_trees", model.n_estimators), ("n_features", X.shape[1])]
        return self._store(spec, molded, original_training_data, model, model.predict(X), table, extra)

    def predict(self, fit, forged, type="numeric"):
        if type != "numeric":
            raise ValueError(f"prediction type '{type}' not supported")
        return pd.DataFrame({".pred": fit.fit_data["model"].predict(forged.predictors.to_numpy(float))})


class ArimaModel:
    """A least-squares AR(1) with intercept (stand-in for statsmodels' ARIMA)."""

    def fit(self, y: np.ndarray):
        A = np.column_stack([np.ones(len(y) - 1), y[:-1]])
        self.const_, self.phi_ = np.linalg.lstsq(A, y[1:], rcond=None)[0]
        resid = y[1:] - A @ np.array([self.const_, self.phi_])
        self.sigma2_ = float(resid.var())
        self.fitted_ = np.concatenate([[y[0]], A @ np.array([self.const_, self.phi_])])
        self.last_ = y[-1]
        return self


class ArimaEngine:
    """Raw-data engine: defines fit_raw / predict_raw like the real time-series engines."""

    def fit_raw(self, spec, data, formula, date_col=None):
        outcome = formula.split("~")[0].strip()
        dcol = date_col or _date_column(data)
        y = data[outcome].to_numpy(float)
        model = ArimaModel().fit(y)
        n = len(y)
        ll = -n / 2 * (np.log(2 * np.pi * model.sigma2_) + 1)
        coefs = pd.DataFrame({"variable": ["intercept", "ar.L1", "sigma2"],
                              "coefficient": [model.const_, model.phi_, model.sigma2_]})
        fit_data = {"model": model, "y_train": y, "fitted": model.fitted_, "formula": formula,
                    "coefficients": coefs, "n_params": 2, "date_col": dcol,
                    "dates": data[dcol].to_numpy() if dcol else None,
                    "extra_stats": [("order", str((1, 0, 0))), ("aic", 4 - 2 * ll),
                                    ("bic", 2 * np.log(n) - 2 * ll), ("sigma2", model.sigma2_)]}
        return fit_data, {"formula": formula, "outcome_name": outcome, "date_col": dcol,
                          "exog_vars": []}

    def predict_raw(self, fit, new_data, type="numeric"):
        m, h = fit.fit_data["model"], len(new_data)
        preds, last = [], m.last_
        for _ in range(h):
            last = m.const_ + m.phi_ * last
            preds.append(last)
        dcol = fit.fit_data["date_col"]
        index = pd.DatetimeIndex(new_data[dcol]) if dcol in new_data.columns else None
        out = pd.DataFrame({".pred": preds}, index=index)
        if type == "conf_int":
            var = m.sigma2_ * np.cumsum(m.phi_ ** (2 * np.arange(h)))
            out[".pred_lower"] = out[".pred"] - 1.96 * np.sqrt(var)
            out[".pred_upper"] = out[".pred"] + 1.96 * np.sqrt(var)
        elif type != "numeric":
            raise ValueError(f"prediction type '{type}' not supported")
        return out


ENGINE_REGISTRY = {
    ("linear_reg", "sklearn"): lambda: LinearRegEngine("sklearn"),
    ("linear_reg", "statsmodels"): lambda: LinearRegEngine("statsmodels"),
    ("rand_forest", "sklearn"): RandForestEngine,
    ("arima_reg", "statsmodels"): ArimaEngine,
}


def get_engine(model_type: str, engine: str):
    try:
        return ENGINE_REGISTRY[(model_type, engine)]()
    except KeyError:
        raise ValueError(f"no engine '{engine}' for model '{model_type}'") from None
