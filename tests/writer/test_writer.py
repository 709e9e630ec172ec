"""The writer's contract with the user's process: flush, run_id, what the user's process imports,
and a process that cannot be started."""

from __future__ import annotations

import sys

import pytest
from helpers import linear_wf, python

import tidymlflow
from tidymlflow import TidyMLflowWarning
from tidymlflow._writer import client as _service


def test_flush_returns_the_runs_written_since_the_last_flush(store, split):
    tidymlflow.autolog(log_plots=False)  # before the imports: names imported in a function stay unpatched
    from py_rsample import vfold_cv
    from py_tune import grid_regular, tune, tune_grid

    tidymlflow.flush()
    fit = linear_wf().fit(split[0]).evaluate(split[1])
    first = tidymlflow.flush(timeout=120)
    assert first == [store.run("linear_reg: y ~ x1 + x2").info.run_id]  # evaluate adds no run
    assert tidymlflow.run_id(fit) == first[0]

    from py_parsnip import linear_reg
    from py_workflows import workflow

    wf = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg(penalty=tune()))
    results = tune_grid(wf, vfold_cv(split[0], v=3, seed=1),
                        grid=grid_regular({"penalty": {"range": (0.01, 1.0)}}, levels=3))
    second = tidymlflow.flush(timeout=120)
    parent = store.run("tune_grid: linear_reg")
    assert second[0] == parent.info.run_id
    assert sorted(second[1:]) == sorted(r.info.run_id for r in store.children(parent))
    assert tidymlflow.run_id(results) == parent.info.run_id
    assert tidymlflow.flush() == []
    assert tidymlflow.run_id(object()) is None


def test_the_users_process_imports_no_mlflow_matplotlib_or_plotly(tmp_path, tracking_uri):
    out = python(f"""
        import os, sys
        os.environ["MLFLOW_TRACKING_URI"] = "{tracking_uri}"
        os.environ["TIDYMLFLOW_WRITER"] = "process"
        import tidymlflow
        tidymlflow.autolog()
        import numpy as np, pandas as pd
        from py_parsnip import linear_reg
        from py_rsample import vfold_cv
        from py_tune import grid_regular, tune, tune_grid
        from py_workflows import workflow
        df = pd.DataFrame({{"date": pd.date_range("2021-01-01", periods=60), "x1": np.arange(60.0)}})
        df["y"] = df["x1"] * 2 + np.sin(np.arange(60))
        fit = workflow().add_formula("y ~ x1").add_model(linear_reg()).fit(df.iloc[:50])
        fit.evaluate(df.iloc[50:])
        wf = workflow().add_formula("y ~ x1").add_model(linear_reg(penalty=tune()))
        grid = grid_regular({{"penalty": {{"range": (0.1, 1.0)}}}}, levels=2)
        tune_grid(wf, vfold_cv(df.drop(columns="date"), v=3), grid=grid)
        ids = tidymlflow.flush()
        print(len(ids), [m for m in ("mlflow", "matplotlib", "plotly") if m in sys.modules])
    """, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "4 []"  # the fit, the tuner and its 2 children


def test_a_writer_that_cannot_start_falls_back_to_writing_in_process(store, split, monkeypatch, tmp_path):
    current = _service.current()
    if current is not None:
        _service._close(current)
    _service._writer = None
    monkeypatch.setenv("TIDYMLFLOW_WRITER", "process")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))  # Popen fails for real
    try:
        with pytest.warns(TidyMLflowWarning, match="could not start the writer process"):
            tidymlflow.autolog(log_plots=False)
        assert isinstance(_service.current(), _service.Inline)
        linear_wf().fit(split[0])
        assert [r.info.run_name for r in store.runs()] == ["linear_reg: y ~ x1 + x2"]
    finally:
        _service._writer = None  # the next test starts a writer of its mode


def test_a_script_creating_the_store_while_the_writer_starts_is_never_broken(tmp_path):
    """The writer prepares a fresh sqlite store while the script starts; a script that creates
    the same store at that moment must never see it half-built, and the writer must never open
    the script's half-built store (four fresh stores, the script creating its store 0 to 1.8 s
    after autolog(), across the writer's start)."""
    for attempt in range(4):
        db = tmp_path / f"fresh-{attempt}.db"
        out = python(f"""
            import os, time
            os.environ["MLFLOW_TRACKING_URI"] = "sqlite:///{db}"
            import tidymlflow
            tidymlflow.autolog(writer="process")
            import mlflow
            time.sleep({attempt * 0.6})
            mlflow.set_experiment("mine")
            import numpy as np, pandas as pd
            from py_parsnip import linear_reg
            df = pd.DataFrame({{"x1": np.arange(30.0)}})
            df["y"] = df["x1"] * 2 + np.sin(np.arange(30))
            linear_reg().fit(df, "y ~ x1")
            tidymlflow.flush()
            print(len(mlflow.search_runs(experiment_names=["mine"])))
        """, tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().splitlines()[-1] == "1"
    assert not list(tmp_path.glob("*.tidymlflow-*"))  # nothing left aside


def test_the_writer_keeps_the_sqlite_journal_and_leaves_the_stores_mode_alone(tmp_path, monkeypatch):
    """The writer's connections keep a store's rollback journal between transactions (PERSIST:
    a third of MLflow's cost per run is creating and deleting it); the file left beside the
    store is not a hot journal, the store's own mode is unchanged for every other connection,
    and a store the user put in WAL mode stays in WAL mode."""
    import sqlite3

    from mlflow import MlflowClient

    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):  # set by tests before: another store's
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # a new store's default experiment keeps its files in ./mlruns
    plain, wal = tmp_path / "plain.db", tmp_path / "wal.db"
    for db in (plain, wal):
        MlflowClient(f"sqlite:///{db}").search_experiments()  # MLflow creates its tables
    sqlite3.connect(wal).execute("PRAGMA journal_mode=WAL").fetchone()
    for db in (plain, wal):
        out = python(f"""
            import os
            os.environ["MLFLOW_TRACKING_URI"] = "sqlite:///{db}"
            import tidymlflow
            tidymlflow.autolog(writer="process", log_plots=False)
            import numpy as np, pandas as pd
            from py_parsnip import linear_reg
            df = pd.DataFrame({{"x1": np.arange(30.0)}})
            df["y"] = df["x1"] * 2 + np.sin(np.arange(30))
            linear_reg().fit(df, "y ~ x1")
            print(len(tidymlflow.flush()))
        """, tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().splitlines()[-1] == "1"
    journal = plain.with_name("plain.db-journal")
    assert journal.exists() and not any(journal.read_bytes()[:28])  # kept, and its header zeroed
    for db, mode in ((plain, "delete"), (wal, "wal")):
        connection = sqlite3.connect(db)
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == mode
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert connection.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    assert (tmp_path / "mlruns").is_dir()  # the runs' files stayed in the test's folder
