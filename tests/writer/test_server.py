"""Against a real ``mlflow server`` on 127.0.0.1 (REST tracking and proxied artifact upload)."""

from __future__ import annotations

import pytest
from helpers import top_runs
from servers import mlflow_server

import tidymlflow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    with mlflow_server(f"sqlite:///{root / 'server.db'}", root / "artifacts", root / "server.log") as url:
        yield url


def test_fit_evaluate_and_tuning_over_a_real_server(server, split, monkeypatch, tmp_path):
    import mlflow
    from conftest import Store

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    mlflow.set_tracking_uri(server)
    client = mlflow.MlflowClient(server)
    exp = client.create_experiment(f"server-{tmp_path.name}")
    mlflow.set_experiment(experiment_id=exp)
    store = Store(client, exp, tmp_path)
    tidymlflow.autolog()
    from py_parsnip import linear_reg
    from py_rsample import vfold_cv
    from py_tune import grid_regular, tune, tune_grid
    from py_workflows import workflow

    train, test = split
    fit = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg()).fit(train)
    fit.evaluate(test)
    wf = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg(penalty=tune()))
    grid = grid_regular({"penalty": {"range": (0.01, 1.0)}}, levels=3)
    tune_grid(wf, vfold_cv(train, v=3, seed=1), grid=grid)

    names = sorted(r.info.run_name for r in top_runs(store))
    assert names == ["linear_reg: y ~ x1 + x2", "tune_grid: linear_reg"]
    run = store.run("linear_reg: y ~ x1 + x2")
    assert {"train_rmse", "test_rmse"} <= set(run.data.metrics)
    outputs = store.table(run, "tidymodels/outputs.parquet")
    assert set(outputs["split"]) == {"train", "test"}
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/forecast.html", "plots/forecast.png", "plots/residual_diagnostics.png"}
    parent = store.run("tune_grid: linear_reg")
    assert len(store.children(parent)) == 3
    assert len(store.table(parent, "tune/summary.parquet")) == 3
