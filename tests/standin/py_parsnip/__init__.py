"""Stand-in for py_parsnip (see tests/standin/README.md)."""

__version__ = "0.1.0"  # set before the imports: tidymlflow reads it while they run

from py_parsnip.model_spec import ModelFit, ModelSpec



def linear_reg(penalty=None, mixture=None, intercept=True, engine="sklearn") -> ModelSpec:
    args = {k: v for k, v in {"penalty": penalty, "mixture": mixture}.items() if v is not None}
    args["intercept"] = intercept
    return ModelSpec("linear_reg", engine=engine, mode="regression", args=args)


def rand_forest(mtry=None, trees=None, min_n=None, engine="sklearn") -> ModelSpec:
    args = {k: v for k, v in {"mtry": mtry, "trees": trees, "min_n": min_n}.items() if v is not None}
    return ModelSpec("rand_forest", engine=engine, mode="unknown", args=args)


def arima_reg(seasonal_period=None, non_seasonal_ar=0, non_seasonal_differences=0,
              non_seasonal_ma=0, seasonal_ar=0, seasonal_differences=0, seasonal_ma=0,
              engine="statsmodels") -> ModelSpec:
    args = dict(seasonal_period=seasonal_period, non_seasonal_ar=non_seasonal_ar,
                non_seasonal_differences=non_seasonal_differences, non_seasonal_ma=non_seasonal_ma,
                seasonal_ar=seasonal_ar, seasonal_differences=seasonal_differences,
                seasonal_ma=seasonal_ma)
    return ModelSpec("arima_reg", engine=engine, mode="regression", args=args)


__all__ = ["ModelSpec", "ModelFit", "linear_reg", "rand_forest", "arima_reg"]
