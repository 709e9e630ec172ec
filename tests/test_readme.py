"""The README's snippets work when pasted after the quickstart, in the same folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def _snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)


def test_every_readme_snippet_is_self_contained_and_runs_after_the_quickstart(tmp_path, monkeypatch):
    """Each Python snippet of the README sets its own tracking URI and runs as pasted, in a fresh
    namespace, in the folder where the quickstart ran; the ones that read runs find rows."""
    import mlflow

    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "mlruns").exists()  # everything is in mlruns.db and mlartifacts
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    snippets = _snippets()
    assert len(snippets) >= 8
    try:
        for code in snippets:
            assert 'mlflow.set_tracking_uri("sqlite:///mlruns.db")' in code, code
            mlflow.set_tracking_uri(None)  # nothing carried over from the snippet before
            namespace: dict = {}
            exec(compile(code, "README.md", "exec"), namespace)
            frames = {k: v for k, v in namespace.items() if isinstance(v, pd.DataFrame)}
            if "search_runs" in code or "load_outputs" in code or "collect" in code:
                sizes = {k: len(v) for k, v in frames.items()}
                assert frames and all(sizes.values()), (code, sizes)
    finally:
        mlflow.set_tracking_uri(None)
    import tidymlflow

    tidymlflow.flush()
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlruns.db'}")
    assert client.get_model_version_by_alias("sales", "champion").version
    assert not (tmp_path / "mlruns").exists()
