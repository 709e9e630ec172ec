"""Import-time behaviour, in fresh interpreters: nothing heavy at import, hooks on import."""

from __future__ import annotations

import os

from helpers import python


def test_import_is_light(tmp_path):
    out = python("""
        import sys, tidymlflow
        heavy = [m for m in ("mlflow", "matplotlib", "plotly", "pandas", "py_parsnip",
                             "py_workflows", "py_workflowsets") if m in sys.modules]
        print(heavy)
    """, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_autolog_before_imports_patches_on_import(tmp_path, tracking_uri):
    out = python(f"""
        import sys, tidymlflow
        tidymlflow.autolog()
        assert "py_workflows" not in sys.modules   # autolog imports no py-tidymodels module
        import mlflow
        mlflow.set_tracking_uri("{tracking_uri}")
        exp = mlflow.create_experiment("fresh-import-{os.getpid()}", artifact_location=r"{tmp_path / 'a'}")
        mlflow.set_experiment(experiment_id=exp)
        import numpy as np, pandas as pd
        from py_parsnip import linear_reg
        from py_workflows import workflow
        df = pd.DataFrame({{"x1": np.arange(30.0), "y": np.arange(30.0) * 2 + np.sin(np.arange(30))}})
        workflow().add_formula("y ~ x1").add_model(linear_reg()).fit(df)
        tidymlflow.flush()
        print(len(mlflow.search_runs([exp])))
    """, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "1"
    assert not (tmp_path / "mlruns").exists()


def test_broken_workflowsets_import_leaves_autolog_working(tmp_path):
    broken = tmp_path / "shadow"
    (broken / "py_workflowsets").mkdir(parents=True)
    (broken / "py_workflowsets" / "__init__.py").write_text("import seaborn_not_installed_here\n")
    out = python("""
        import tidymlflow
        tidymlflow.autolog()
        try:
            import py_workflowsets
        except ModuleNotFoundError as exc:
            print("import failed:", exc.name)
        import py_workflows
        print("ok")
    """, tmp_path, extra_path=[broken])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["import", "failed:", "seaborn_not_installed_here", "ok"]
