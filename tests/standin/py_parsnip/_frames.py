"""The three output DataFrames, shared by every stand-in engine."""

from __future__ import annotations

import numpy as np
import pandas as pd

OUTPUT_COLS = ["date", "actuals", "fitted", "forecast", "residuals", "split", "model",
               "model_group_name", "group"]
COEF_COLS = ["variable", "coefficient", "std_error", "t_stat", "p_value", "vif", "model",
             "model_group_name", "group", "ci_0.025", "ci_0.975"]


def regression_rows(split: str, actuals, fitted, n_params: int) -> list[tuple]:
    a, f = np.asarray(actuals, float), np.asarray(fitted, float)
    res = a - f
    n = len(a)
    rmse = float(np.sqrt(np.mean(res**2)))
    ss_tot = float(np.sum((a - a.mean()) ** 2))
    r2 = 1 - float(np.sum(res**2)) / ss_tot if ss_tot > 0 else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        mape = float(np.mean(np.abs(res / a)) * 100)
        smape = float(np.mean(2 * np.abs(res) / (np.abs(a) + np.abs(f))) * 100)
        adj = 1 - (1 - r2) * (n - 1) / (n - n_params - 1) if n - n_params - 1 > 0 else np.nan
    mda = float(np.mean(np.sign(np.diff(a)) == np.sign(f[1:] - a[:-1])) * 100) if n > 1 else np.nan
    rows = [("rmse", rmse), ("mae", float(np.mean(np.abs(res)))), ("mape", mape),
            ("smape", smape), ("r_squared", r2), ("mda", mda), ("adj_r_squared", adj)]
    if split == "train":
        denom = float(np.sum(res**2))
        rows.append(("durbin_watson", float(np.sum(np.diff(res) ** 2)) / denom if denom else np.nan))
        rows += ljung_box(res)
    return [(split, m, v) for m, v in rows]


def ljung_box(residuals) -> list[tuple]:
    """As the library's engines: statsmodels' Ljung-Box at max(1, min(10, n // 5)) lags, the last
    lag's statistic and p-value (O(n^2) in statsmodels, like the real library's)."""
    try:
        import statsmodels.stats.diagnostic as sm_diag

        n_lags = max(1, min(10, len(residuals) // 5))
        lb = sm_diag.acorr_ljungbox(residuals, lags=n_lags)
        return [("ljung_box_stat", lb["lb_stat"].iloc[-1]), ("ljung_box_p", lb["lb_pvalue"].iloc[-1])]
    except Exception:
        return [("ljung_box_stat", np.nan), ("ljung_box_p", np.nan)]


def build_outputs(fit, train_resid_is_actuals: bool = False):
    """Return (outputs, coefficients, stats) for a stand-in ModelFit."""
    fd = fit.fit_data
    if fd.get("outcome_categorical"):  # the real library's error for an object-dtype outcome
        raise ValueError("Cannot construct a Series from a DataFrame. To select a single column, "
                         "use df.iloc[:, 0].")
    name = fit.model_name or fit.spec.model_type
    group_name = fit.model_group_name or ""
    parts = []
    train = pd.DataFrame({"actuals": fd["y_train"], "fitted": fd["fitted"]})
    train["residuals"] = train["actuals"] if train_resid_is_actuals else train["actuals"] - train["fitted"]
    train["split"] = "train"
    if fd.get("dates") is not None:
        train.insert(0, "date", np.asarray(fd["dates"]))
    parts.append(train)
    ev = fit.evaluation_data
    stats_rows = regression_rows("train", fd["y_train"], fd["fitted"], fd["n_params"])
    if ev:
        preds = ev["test_predictions"][".pred"].to_numpy()
        actual = ev["test_data"][ev["outcome_col"]].to_numpy(dtype=float)
        test = pd.DataFrame({"actuals": actual, "fitted": preds, "residuals": actual - preds,
                             "split": "test"})
        if "date" in train.columns:
            src = ev.get("original_test_data")
            src = ev["test_data"] if src is None else src
            dcol = fd.get("date_col")
            test.insert(0, "date", src[dcol].to_numpy() if dcol in src.columns else pd.NaT)
        parts.append(test)
        stats_rows += regression_rows("test", actual, preds, fd["n_params"])
    outputs = pd.concat(parts, ignore_index=True)
    outputs["forecast"] = outputs["actuals"].where(outputs["actuals"].notna(), outputs["fitted"])
    outputs["model"], outputs["model_group_name"], outputs["group"] = name, group_name, "global"
    outputs = outputs[[c for c in OUTPUT_COLS if c in outputs.columns]]

    stats_rows += [("", k, v) for k, v in fd["extra_stats"]]
    meta = [("", "formula", fd["formula"]), ("", "model_type", fit.spec.model_type),
            ("", "model_class", type(fd["model"]).__name__),
            ("train", "n_obs_train", len(fd["y_train"]))]
    if fd.get("dates") is not None:
        dates = np.asarray(fd["dates"], dtype="datetime64[ns]")
        meta += [("train", "train_start_date", str(dates.min())),
                 ("train", "train_end_date", str(dates.max()))]
    stats_rows += meta
    stats = pd.DataFrame(stats_rows, columns=["split", "metric", "value"]).astype({"value": object})
    stats["model"], stats["model_group_name"], stats["group"] = name, group_name, "global"
    stats = stats[["split", "metric", "value", "model", "model_group_name", "group"]]

    coefs = fd["coefficients"].copy()
    for col in COEF_COLS:
        if col not in coefs.columns:
            coefs[col] = np.nan
    coefs["model"], coefs["model_group_name"], coefs["group"] = name, group_name, "global"
    return outputs, coefs[COEF_COLS], stats


def combine_nested(group_col: str, per_group: dict, set_group: bool):
    """Concatenate per-group frames with the group column (after date / first)."""
    outs, coefs, stats = [], [], []
    for g, (o, c, s) in per_group.items():
        o, c, s = o.copy(), c.copy(), s.copy()
        o.insert(1 if "date" in o.columns else 0, group_col, g)
        c.insert(0, group_col, g)
        s.insert(0, group_col, g)
        if set_group:
            o["group"], c["group"], s["group"] = g, g, g
        outs.append(o), coefs.append(c), stats.append(s)
    return (pd.concat(outs, ignore_index=True), pd.concat(coefs, ignore_index=True),
            pd.concat(stats, ignore_index=True))
