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
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    return [b for b in blocks if "sqlite:///mlruns.db" in b]


def test_readme_snippets_return_rows_after_the_quickstart(tmp_path, monkeypatch):
    import mlflow

    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tmp_path / "mlruns").exists()  # everything is in mlruns.db and mlartifacts
    monkeypatch.chdir(tmp_path)
    snippets = _snippets()
    assert len(snippets) >= 4
    try:
        for code in snippets:
            namespace: dict = {}
            exec(compile(code, "README.md", "exec"), namespace)
            frames = {k: v for k, v in namespace.items() if isinstance(v, pd.DataFrame)}
            sizes = {k: len(v) for k, v in frames.items()}
            assert frames and all(sizes.values()), (code, sizes)
    finally:
        mlflow.set_tracking_uri(None)
