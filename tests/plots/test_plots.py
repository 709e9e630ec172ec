"""The plot gallery: every plot renders from small tables to a valid file of sane size, edge cases
draw without error, and the user's pyplot state is left alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tidymlflow import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _outputs(n=120, groups=None, constant=False, nan=False, test=20, decomposition=False):
    rng = np.random.default_rng(1)
    frames = []
    for g in groups or [None]:
        actuals = np.sin(np.arange(n) / 5) * 3 + rng.normal(size=n)
        fitted = actuals if constant else actuals + rng.normal(scale=0.5, size=n)
        frame = pd.DataFrame({"date": pd.date_range("2023-01-01", periods=n), "actuals": actuals,
                              "fitted": fitted, "forecast": fitted, "residuals": actuals - fitted,
                              "split": ["train"] * (n - test) + ["test"] * test, "model": "m",
                              "group": "global"})
        if constant:
            frame["fitted"] = frame["actuals"] - 1.0
        if nan:
            frame.loc[::7, "actuals"] = np.nan
        if decomposition:
            frame["trend"] = np.arange(n) * 0.1
            frame["seasonal"] = np.sin(np.arange(n) / 5)
            frame["remainder"] = rng.normal(size=n)
        if g is not None:
            frame.insert(1, "store", g)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _summary(n_params, n=16):
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({f"p{i}": rng.uniform(0.001, 10, n) for i in range(n_params)})
    frame[".config"] = [f"config_{i:03d}" for i in range(n)]
    frame["rmse_mean"] = rng.uniform(1, 2, n)
    frame["rmse_std"] = rng.uniform(0, 0.2, n)
    return frame


def _ws_table(n=6):
    return pd.DataFrame({"wflow_id": [f"prep_{i}_linear_reg_{i}" for i in range(n)],
                         "model": ["linear_reg", "rand_forest"] * (n // 2),
                         "mean": np.linspace(1, 2, n), "std": np.linspace(0.1, 0.3, n)})


def _coefs(groups=("A", "B", "C")):
    rows = [{"store": g, "variable": v, "coefficient": c}
            for g in groups for v, c in (("Intercept", 1.0), ("x1", 2.0 + len(g)), ("x2", -1.0))]
    return pd.DataFrame(rows)


CASES = {
    "residual_diagnostics": lambda: ((_outputs(),), {}),
    "forecast": lambda: ((_outputs(),), {"intervals": pd.DataFrame({
        "date": pd.date_range("2023-04-11", periods=20), ".pred_lower": np.zeros(20),
        ".pred_upper": np.ones(20)})}),
    "decomposition": lambda: ((_outputs(decomposition=True),), {}),
    "pca_scree": lambda: (({"step 3 (step_pca)": [0.6, 0.3, 0.1]},), {}),
    "feature_correlation": lambda: ((_outputs()[["actuals", "fitted"]], _outputs()[["actuals"]]), {}),
    "cv_folds": lambda: ((pd.DataFrame({"metric": ["rmse"] * 5 + ["mae"] * 5, "value": np.arange(10.0),
                                         "position": list(range(5)) * 2}),), {}),
    "parameter_sensitivity": lambda: ((_summary(2), ["p0", "p1"], "rmse"), {}),
    "parallel_coordinates": lambda: ((_summary(3), ["p0", "p1", "p2"], "rmse"), {}),
    "workflow_comparison": lambda: ((_ws_table(), "rmse"), {}),
    "cv_stability": lambda: ((_ws_table(), "rmse"), {}),
    "per_group_heatmap": lambda: ((pd.DataFrame({"group": ["A", "A", "B", "B"], "wflow_id": ["w1", "w2"] * 2,
                                                 "value": [1.0, 2.0, 3.0, np.nan]}), "rmse"), {}),
    "coefficient_variation": lambda: ((_coefs(), "store"), {}),
}


def _render(name, tmp_path, args, kwargs, plotly_js="cdn"):
    figure = plots.draw(name, *args, **kwargs)
    assert figure is not None, name
    ext = "html" if name in plots.INTERACTIVE else "png"
    path = tmp_path / f"{name}.{ext}"
    plots.save(figure, str(path), plotly_js)
    return path.read_bytes()


def test_every_plot_renders_a_valid_file_and_leaves_pyplot_alone(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert set(CASES) == plots.PLOT_NAMES
    mine = plt.figure()
    open_before = plt.get_fignums()
    for name, case in CASES.items():
        args, kwargs = case()
        content = _render(name, tmp_path, args, kwargs)
        if name in plots.INTERACTIVE:
            assert content.lower().startswith((b"<html", b"<!doctype html")) and b"plotly" in content
            assert 2_000 < len(content) < 1_000_000, (name, len(content))
        else:
            assert content.startswith(PNG_MAGIC)
            assert 5_000 < len(content) < 500_000, (name, len(content))
    assert plt.gcf() is mine and plt.get_fignums() == open_before
    plt.close(mine)


def test_plotly_embed_is_self_contained(tmp_path):
    args, kwargs = CASES["forecast"]()
    cdn = _render("forecast", tmp_path, args, kwargs, "cdn")
    embed = _render("forecast", tmp_path, args, kwargs, "embed")
    assert b"cdn.plot.ly" in cdn and len(embed) > 1_000_000 > len(cdn)


EDGE = {
    "thousands of rows": [("residual_diagnostics", (_outputs(n=20_000),)),
                          ("forecast", (_outputs(n=20_000),)),
                          ("decomposition", (_outputs(n=20_000, decomposition=True),))],
    "single group": [("forecast", (_outputs(groups=["A"]), "store")),
                     ("coefficient_variation", (_coefs(("A",)), "store")),
                     ("per_group_heatmap", (pd.DataFrame({"group": ["A"], "split": ["train"],
                                                          "value": [1.0]}), "rmse", "split"))],
    "one fold": [("cv_folds", (pd.DataFrame({"metric": ["rmse"], "value": [1.0], "position": [0]}),)),
                 ("cv_stability", (_ws_table(2).assign(std=np.nan), "rmse"))],
    "constant residuals": [("residual_diagnostics", (_outputs(constant=True),))],
    "NaN values": [("residual_diagnostics", (_outputs(nan=True),)), ("forecast", (_outputs(nan=True),)),
                   ("parameter_sensitivity", (_summary(2).assign(rmse_mean=np.nan), ["p0", "p1"], "rmse")),
                   ("workflow_comparison", (_ws_table().assign(mean=[1, np.nan, 2, 3, np.nan, 4]), "rmse")),
                   ("feature_correlation", (pd.DataFrame({"a": [1.0, 1, 1], "b": [1.0, np.nan, 3]}),
                                            pd.DataFrame({"c": [1.0, 2, 3]})))],
    "1 parameter": [("parameter_sensitivity", (_summary(1), ["p0"], "rmse")),
                    ("parallel_coordinates", (_summary(1), ["p0"], "rmse"))],
    "5 parameters": [("parameter_sensitivity", (_summary(5, n=40), [f"p{i}" for i in range(5)], "rmse")),
                     ("parallel_coordinates", (_summary(5), [f"p{i}" for i in range(5)], "rmse"))],
    "many groups": [("forecast", (_outputs(n=30, groups=[f"g{i}" for i in range(300)]), "store")),
                    ("coefficient_variation", (_coefs(tuple(f"g{i}" for i in range(200))), "store"))],
    "categorical parameter": [("parameter_sensitivity", (_summary(1).assign(p1=["a", "b"] * 8), ["p0", "p1"],
                                                         "rmse"))],
}


@pytest.mark.parametrize("case", sorted(EDGE))
def test_edge_cases_draw_without_error(case, tmp_path):
    for name, args in EDGE[case]:
        content = _render(name, tmp_path, args, {})
        assert 1_000 < len(content) < 5_000_000, (name, len(content))
        if name in plots.INTERACTIVE:  # and its png twin
            path = tmp_path / f"{name}.png"
            plots.save(plots.draw_png(name, *args), str(path))
            assert path.read_bytes().startswith(PNG_MAGIC)


def test_interactive_plots_have_a_png_twin_and_an_offline_message(tmp_path):
    for name in sorted(plots.INTERACTIVE):
        args, kwargs = CASES[name]()
        page = _render(name, tmp_path, args, kwargs).decode()
        assert "plotly.js could not be loaded" in page and f"{name}.png" in page
        body = page[page.index("<body>"):]
        assert body.index("tidymlflow-offline") < body.index("window.Plotly")  # shown, then hidden by JS
        path = tmp_path / f"{name}.png"
        plots.save(plots.draw_png(name, *args, **kwargs), str(path))
        assert 5_000 < len(path.read_bytes()) < 500_000 and path.read_bytes().startswith(PNG_MAGIC)


def test_inputs_with_nothing_to_show_give_no_figure():
    assert plots.draw("residual_diagnostics", pd.DataFrame({"x": [1]})) is None
    assert plots.draw("forecast", _outputs().drop(columns=["date"])) is None  # no date column
    assert plots.draw("decomposition", _outputs()) is None
    assert plots.draw("parameter_sensitivity", _summary(0), [], "rmse") is None
    too_wide = pd.DataFrame(np.ones((3, 51)))
    assert plots.draw("feature_correlation", too_wide, pd.DataFrame({"a": [1.0]})) is None
    with pytest.raises(ValueError, match="valid names"):
        plots.draw("no_such_plot")


def test_long_series_are_thinned_and_the_plot_says_so(tmp_path):
    """A 300k-row forecast: each line at most MAX_POINTS points, the title says how many were
    drawn, and the html stays small."""
    from tidymlflow.plots import data

    n = 300_000
    outputs = _outputs(n=n, test=60_000)
    intervals = pd.DataFrame({"date": outputs["date"].iloc[-60_000:].to_numpy(),
                              ".pred_lower": np.zeros(60_000), ".pred_upper": np.ones(60_000)})
    figure = plots.draw("forecast", outputs, intervals=intervals)
    assert all(len(trace.x) <= data.MAX_POINTS for trace in figure.data)
    assert f"every 60th of {n:,} points drawn" in figure.layout.title.text
    path = tmp_path / "forecast.html"
    plots.save(figure, str(path))
    assert path.stat().st_size < 3_000_000
    png = plots.draw_png("residual_diagnostics", outputs)
    assert "points drawn" in png._suptitle.get_text()
    plots.save(png, str(tmp_path / "r.png"))
    assert (tmp_path / "r.png").read_bytes().startswith(PNG_MAGIC)
    short = plots.draw("forecast", _outputs())
    assert "points drawn" not in short.layout.title.text


def _by_index(frame: pd.DataFrame) -> pd.DataFrame:
    """The same rows without a date column: residuals over the row index."""
    return frame.drop(columns="date")


def test_a_reused_figure_draws_the_very_same_image_as_a_new_one(tmp_path):
    """The writer draws each plot of :data:`plots.REUSABLE` on the figure of the one before it
    (about half the time): after any sequence of inputs (dates, none, constant, NaN, long,
    short), the png is byte for byte the one a new figure gives, and the public function still
    returns a new figure each time."""
    sequence = [_outputs(), _by_index(_outputs(n=300)), _outputs(constant=True), _outputs(n=20_000),
                _by_index(_outputs(n=8, test=0)), _outputs(nan=True), _outputs(n=45), _by_index(_outputs())]
    for name in sorted(plots.REUSABLE):
        for i, outputs in enumerate(sequence):
            fresh, reused = tmp_path / f"{name}-{i}-new.png", tmp_path / f"{name}-{i}-reused.png"
            plots.save(plots.draw_png(name, outputs), str(fresh))
            plots.save(plots.draw_png(name, outputs, reuse=True), str(reused))
            assert fresh.read_bytes() == reused.read_bytes(), (name, i)
        first, second = plots.draw_png(name, sequence[0]), plots.draw_png(name, sequence[0])
        assert first is not second
        assert plots.draw_png(name, sequence[1], reuse=True) is plots.draw_png(name, sequence[4], reuse=True)
