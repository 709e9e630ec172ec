"""Test set-up: real py-tidymodels when importable, else the stand-in; a real sqlite MLflow store;
strict mode; autolog switched off after every test."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["TIDYMLFLOW_STRICT"] = "1"
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
# a writer leaves with its last script here (the default is to wait 600 s for the next one);
# tests/test_daemon.py checks a writer that stays
os.environ["TIDYMLFLOW_WRITER_IDLE"] = "0"
# the journal of jobs not yet written lives in a folder of this test session, never in ~/.cache
os.environ["TIDYMLFLOW_JOURNAL_DIR"] = tempfile.mkdtemp(prefix="tidymlflow-journal-")

STANDIN = Path(__file__).parent / "standin"
REAL = importlib.util.find_spec("py_workflows") is not None
if not REAL:
    sys.path.insert(0, str(STANDIN))
    # loky workers are fresh processes: they find the stand-in through PYTHONPATH
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(STANDIN), os.environ.get("PYTHONPATH")) if p)


#: Test modules that log nothing through tidymlflow's writer (pure readers, plots, records, the
#: model flavor, patch conformance, load_results' rebuilding): the in-process pass adds nothing.
WRITER_FREE = ("read/test_readers.py", "read/test_restore.py", "plots/test_plots.py", "jobs/",
               "models/test_models.py", "engine/test_conformance.py", "test_results.py")


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        relative = Path(str(item.fspath)).relative_to(here).as_posix()
        if any(relative == m or (m.endswith("/") and relative.startswith(m)) for m in WRITER_FREE):
            item.add_marker(pytest.mark.writer_free)


def pytest_report_header(config):
    which = "REAL py-tidymodels" if REAL else f"the py-tidymodels STAND-IN ({STANDIN})"
    return f"tidymlflow tests run against {which}"


class Store:
    """One experiment of a real sqlite tracking store, read back with MlflowClient."""

    def __init__(self, client, experiment_id: str, root: Path):
        self._client, self.experiment_id, self.root = client, experiment_id, root

    @property
    def client(self):
        """The store's MlflowClient, once everything logged so far is written (the writer
        process writes after the calls return)."""
        import tidymlflow

        tidymlflow.flush(timeout=120)
        return self._client

    def runs(self, filter_string: str = ""):
        return self.client.search_runs([self.experiment_id], filter_string=filter_string,
                                       max_results=1000)

    def run(self, name: str):
        runs = [r for r in self.runs() if r.info.run_name == name]
        names = [r.info.run_name for r in self.runs()]
        assert len(runs) == 1, f"expected one run named {name!r}, got {names}"
        return runs[0]

    def children(self, run):
        return self.runs(f"tags.`mlflow.parentRunId` = '{run.info.run_id}'")

    def table(self, run, path: str) -> pd.DataFrame:
        local = self.client.download_artifacts(run.info.run_id, path, str(self.root / uuid.uuid4().hex))
        return pd.read_parquet(local)

    def history(self, run, key: str):
        return self.client.get_metric_history(run.info.run_id, key)


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory):
    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    return f"sqlite:///{db}"


@pytest.fixture
def store(tracking_uri, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri)
    exp = client.create_experiment(f"test-{uuid.uuid4().hex}",
                                   artifact_location=str(tmp_path / "artifacts"))
    mlflow.set_experiment(experiment_id=exp)
    yield Store(client, exp, tmp_path)
    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.fixture(autouse=True)
def _own_working_folder(tmp_path, monkeypatch):
    """Every test runs in a folder of its own: what the checkout's working folder holds (a
    ./mlruns someone made) cannot change a test, and nothing a test writes lands there."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(autouse=True)
def _autolog_off():
    """After each test: autolog off, and everything it logged written; what the writer reported
    and the test did not read is raised here (strict), never carried into the next test."""
    yield
    import tidymlflow
    from tidymlflow._writer import client as _service

    tidymlflow.autolog(disable=True)
    writer = _service.current()
    if writer is not None:
        try:
            writer.flush(120)
            writer.report()
        finally:
            writer.reports = _service.Report()


@pytest.fixture(scope="session")
def data() -> pd.DataFrame:
    """160 daily rows, four stores, outcome y (named so the library finds it)."""
    rng = np.random.default_rng(42)
    n = 160
    df = pd.DataFrame({
        "date": pd.date_range("2021-01-01", periods=n, freq="D"),
        "store": np.repeat(["A", "B", "C", "D"], n // 4),
        "x1": rng.normal(size=n),
        "x2": rng.normal(size=n),
    })
    df["y"] = 10 + 2 * df["x1"] - df["x2"] + rng.normal(scale=0.5, size=n)
    return df


@pytest.fixture(scope="session")
def split(data):
    flat = data.drop(columns=["store"])
    return flat.iloc[:120].reset_index(drop=True), flat.iloc[120:].reset_index(drop=True)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs, mounted for the test (needs the right to mount, as root in CI has)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.strip()}); the file-as-folder case in "
                    "test_engine covers a failing artifact store")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
