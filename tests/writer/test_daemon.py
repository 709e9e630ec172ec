"""A writer that stays between scripts (``TIDYMLFLOW_WRITER_IDLE``): the next script run in the
same setting connects to it; scripts at once share it; it leaves when idle; a killed one is
replaced; a store file deleted under it is opened again; each script's runs go to its own
store and experiment. Every script is a real process writing to a real sqlite store."""

from __future__ import annotations

import concurrent.futures
import contextlib
import math
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_faults import SCRIPT, _left_behind, _stacks, _writer_gone, _writer_pid

pytestmark = pytest.mark.writer_process


@pytest.fixture
def env(tmp_path):
    """A user's script environment whose writer stays 60 s; every writer of this test is stopped
    at its end."""
    values = {**os.environ, "TIDYMLFLOW_WRITER": "process", "TIDYMLFLOW_STRICT": "0",
              "TIDYMLFLOW_JOURNAL_DIR": str(tmp_path / "journal"), "MLFLOW_DISABLE_TELEMETRY": "true",
              "TIDYMLFLOW_WRITER_IDLE": "60"}
    for key in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_TRACKING_URI"):
        values.pop(key, None)
    (tmp_path / "script.py").write_text(SCRIPT)
    yield values
    for pid in _left_behind(values, wait=0):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _run(tmp_path: Path, env: dict[str, str], uri: str, **extra: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, str(tmp_path / "script.py"), "fit"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=180,
                         env={**env, "MLFLOW_TRACKING_URI": uri, **extra})
    assert out.returncode == 0 and "done" in out.stdout, out.stderr
    said = [line for line in out.stderr.splitlines() if "tidymlflow" in line.lower()
            and not line.startswith("tidymlflow: writing")]  # the progress line of a cold start
    assert said == [], out.stderr  # no warning
    return out


def _runs(uri: str, experiment: str = "0") -> list:
    from mlflow import MlflowClient

    return MlflowClient(uri).search_runs([experiment])


def _complete(uri: str, experiment: str = "0") -> None:
    """The script's fit run is FINISHED with its tables and plots, written before it ended."""
    from mlflow import MlflowClient

    runs = _runs(uri, experiment)
    assert [r.info.run_name for r in runs] == ["linear_reg: y ~ x1 + x2"]
    assert runs[0].info.status == "FINISHED"
    assert {"train_rmse", "test_rmse"} <= set(runs[0].data.metrics)
    files = {a.path for a in MlflowClient(uri).list_artifacts(runs[0].info.run_id, "plots")}
    assert "plots/residual_diagnostics.png" in files


def test_the_next_script_finds_the_writer_and_writes_to_its_own_store(tmp_path, env):
    first_uri, second_uri = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    first = _run(tmp_path, env, first_uri, MLFLOW_EXPERIMENT_NAME="first")
    second = _run(tmp_path, env, second_uri)
    assert _writer_pid(first.stdout) == _writer_pid(second.stdout)
    from mlflow import MlflowClient

    _complete(first_uri, MlflowClient(first_uri).get_experiment_by_name("first").experiment_id)
    # the second script had no MLFLOW_EXPERIMENT_NAME: the first one's is not carried over
    _complete(second_uri)
    assert [e.name for e in MlflowClient(second_uri).search_experiments()] == ["Default"]


def test_scripts_started_at_once_share_one_writer(tmp_path, env):
    uris = [f"sqlite:///{tmp_path / f's{i}.db'}" for i in range(3)]
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        outs = list(pool.map(lambda uri: _run(tmp_path, env, uri), uris))
    assert len({_writer_pid(o.stdout) for o in outs}) == 1
    for uri in uris:
        _complete(uri)


def test_an_idle_writer_leaves_and_takes_its_socket_with_it(tmp_path, env):
    uri = f"sqlite:///{tmp_path / 'a.db'}"
    env = {**env, "TIDYMLFLOW_WRITER_IDLE": "1"}
    out = _run(tmp_path, env, uri)
    _writer_gone(_writer_pid(out.stdout), timeout=30)
    assert _left_behind(env) == []  # its plotting process too
    _complete(uri)
    sockets = Path(tempfile.gettempdir(), f"tidymlflow-{os.getuid()}")
    assert stat.S_IMODE(sockets.stat().st_mode) == 0o700  # private to this user
    again = _run(tmp_path, env, uri)  # a new writer, as if none had been
    assert _writer_pid(again.stdout) != _writer_pid(out.stdout)
    assert len(_runs(uri)) == 2


def test_a_killed_writer_is_replaced_by_the_next_script_without_a_word(tmp_path, env):
    uri = f"sqlite:///{tmp_path / 'a.db'}"
    out = _run(tmp_path, env, uri)
    os.kill(_writer_pid(out.stdout), signal.SIGKILL)
    _writer_gone(_writer_pid(out.stdout))
    again = _run(tmp_path, env, uri)  # its socket is left behind, refusing: a new writer
    assert _writer_pid(again.stdout) != _writer_pid(out.stdout)
    assert [r.info.status for r in _runs(uri)] == ["FINISHED", "FINISHED"]


def test_a_store_deleted_between_scripts_is_created_again(tmp_path, env):
    db = tmp_path / "a.db"
    uri = f"sqlite:///{db}"
    first = _run(tmp_path, env, uri)
    db.unlink()
    second = _run(tmp_path, env, uri)
    assert _writer_pid(first.stdout) == _writer_pid(second.stdout)
    _complete(uri)  # in the new file, not in the deleted one the writer had open


def test_scripts_over_folders_and_environments_share_one_writer(tmp_path, env):
    """A loop of scripts over two folders and changing environment values (a seed, an
    experiment) is served by one writer; each job is written in its own script's folder (a
    relative store) and experiment. It used to start a writer per folder and per value."""
    pids = []
    for i in range(4):
        folder = tmp_path / f"project{i % 2}"
        folder.mkdir(exist_ok=True)
        (folder / "script.py").write_text(SCRIPT)
        out = _run(folder, env, "sqlite:///local.db", SEED=str(i), MLFLOW_EXPERIMENT_NAME=f"exp{i % 2}")
        pids.append(_writer_pid(out.stdout))
    assert len(set(pids)) == 1
    from mlflow import MlflowClient

    for j in range(2):
        client = MlflowClient(f"sqlite:///{tmp_path / f'project{j}' / 'local.db'}")
        experiment = client.get_experiment_by_name(f"exp{j}")
        runs = client.search_runs([experiment.experiment_id])
        assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]


def test_a_shared_writer_writes_each_script_with_its_own_credentials(tmp_path, env):
    """Two scripts with other tokens share a writer; every request for a script's runs carries
    that script's token (held in the writer's memory, never in a job)."""
    import json

    from servers import late_answers, mlflow_server

    seen: list[tuple[str, str, bytes]] = []
    backend = f"sqlite:///{tmp_path / 'server.db'}"
    with mlflow_server(backend, tmp_path / "artifacts", tmp_path / "server.log") as url, \
            late_answers(url, "/never", 0.0, record=seen) as proxy:
        pids = [_writer_pid(_run(tmp_path, env, proxy, MLFLOW_TRACKING_TOKEN=token,
                                 MLFLOW_EXPERIMENT_NAME=f"exp-{token}").stdout)
                for token in ("alpha", "beta")]
        from mlflow import MlflowClient

        names = {e.experiment_id: e.name for e in MlflowClient(url).search_experiments()}
    assert pids[0] == pids[1]
    created = [(auth, json.loads(body)["experiment_id"]) for path, auth, body in seen
               if path.endswith("/runs/create")]
    assert sorted(names[e] for _, e in created) == ["exp-alpha", "exp-beta"]
    assert all(auth == f"Bearer {names[e][4:]}" for auth, e in created), created
    assert not list((tmp_path / "journal").rglob("*.json")) or all(
        "alpha" not in p.read_text() and "beta" not in p.read_text()
        for p in (tmp_path / "journal").rglob("*.json"))


def test_a_writer_idle_setting_that_is_not_a_number_is_named(tmp_path, env):
    out = subprocess.run([sys.executable, "-c", "import tidymlflow; tidymlflow.autolog()"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120,
                         env={**env, "TIDYMLFLOW_WRITER_IDLE": "soon"})
    assert out.returncode == 1
    assert "TIDYMLFLOW_WRITER_IDLE must be a number of seconds (finite, 0 or more), got 'soon'" in out.stderr


def test_the_writer_stays_while_a_script_is_connected(tmp_path, env):
    """A long session (a notebook, say) keeps its writer however long it is idle."""
    uri = f"sqlite:///{tmp_path / 'a.db'}"
    script = tmp_path / "script.py"
    proc = subprocess.Popen([sys.executable, str(script), "wait"], cwd=tmp_path, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**env, "MLFLOW_TRACKING_URI": uri, "TIDYMLFLOW_WRITER_IDLE": "0.5"})
    assert proc.stdout is not None and proc.stdin is not None
    pid = int(proc.stdout.readline().split()[1])
    assert proc.stdout.readline().strip() == "fitted"
    time.sleep(3)
    os.kill(pid, 0)  # still there
    # asked for its stacks (how a user sees what a writer waits for), it tells and goes on
    stacks = _stacks(pid)
    assert "in serve" in stacks and "in _accept" in stacks, stacks
    os.kill(pid, 0)
    out, err = proc.communicate("go\n", timeout=180)
    assert proc.returncode == 0 and "done" in out, err
    _writer_gone(pid, timeout=30)
    # the fit, and the tuner after the wait
    assert sorted(r.info.run_name for r in _runs(uri) if "mlflow.parentRunId" not in r.data.tags) == [
        "linear_reg: y ~ x1 + x2", "tune_grid: linear_reg"]


def test_a_writer_serving_two_scripts_tags_each_with_its_own_commit(tmp_path, env):
    """Provenance comes from the script: a writer that lives on between two scripts tags the
    second script's run with the second commit (it used to repeat the first one's)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True,
                              text=True).stdout.strip()

    git("init", "-q", "-b", "main")
    git("config", "user.email", "test@example.com")
    git("config", "user.name", "test")
    git("remote", "add", "origin", "https://example.com/team/repo.git")
    git("add", "script.py")
    git("commit", "-q", "-m", "one")
    uri = f"sqlite:///{tmp_path / 'a.db'}"
    first, commits = _run(tmp_path, env, uri), [git("rev-parse", "HEAD")]
    (tmp_path / "note.txt").write_text("changed")
    git("add", "note.txt")
    git("commit", "-q", "-m", "two")
    second = _run(tmp_path, env, uri)
    commits.append(git("rev-parse", "HEAD"))
    assert _writer_pid(first.stdout) == _writer_pid(second.stdout)  # one writer served both
    runs = sorted(_runs(uri), key=lambda r: r.info.start_time)
    assert [r.data.tags["mlflow.source.git.commit"] for r in runs] == commits
    for run in runs:
        assert run.data.tags["mlflow.source.git.branch"] == "main"
        assert run.data.tags["mlflow.source.git.repoURL"] == "https://example.com/team/repo.git"
        assert run.data.tags["mlflow.source.name"] == str(tmp_path / "script.py")
        assert run.data.tags["mlflow.source.type"] == "LOCAL"


def test_a_stopped_writer_is_replaced_and_left_its_socket_alone(tmp_path, env):
    """A writer that does not say hello within a few seconds (SIGSTOP) is replaced by the next
    script's own; resumed, it does not take the new writer's socket away when it leaves. One lock
    file serves every writer of the user."""
    uri = f"sqlite:///{tmp_path / 'a.db'}"
    stuck = _writer_pid(_run(tmp_path, env, uri).stdout)
    os.kill(stuck, signal.SIGSTOP)
    try:
        start = time.monotonic()
        second = _run(tmp_path, env, uri)
        took = time.monotonic() - start
    finally:
        os.kill(stuck, signal.SIGCONT)
    fresh = _writer_pid(second.stdout)
    assert fresh != stuck and took < 45  # it used to wait 60 s at exit for the stopped writer
    assert [r.info.status for r in _runs(uri)] == ["FINISHED", "FINISHED"]
    os.kill(stuck, signal.SIGTERM)  # the old writer goes; the socket stays the new writer's
    _writer_gone(stuck, timeout=30)
    assert _writer_pid(_run(tmp_path, env, uri).stdout) == fresh
    folder = Path(tempfile.gettempdir(), f"tidymlflow-{os.getuid()}")
    assert [p.name for p in folder.iterdir() if p.name.endswith(".lock")] == ["writers.lock"]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def _rss_mb(pid: int) -> float:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_an_idle_writer_rests_lean_and_wakes_for_the_next_script(tmp_path, env):
    """Waiting for its next script the writer holds no plotting process and rests: it starts
    again lean in the same process on the same socket (MLflow and its store let go of), and the
    next script's hello brings everything back; its runs and plots are written as before."""
    from tidymlflow._writer.server import QUIET

    # it rests after TIDYMLFLOW_WRITER_REST s (default 120) with more than QUIET s of its idle time left
    env = {**env, "TIDYMLFLOW_WRITER_IDLE": "120", "TIDYMLFLOW_WRITER_REST": "3"}
    uri = f"sqlite:///{tmp_path / 'a.db'}"
    pid = _writer_pid(_run(tmp_path, env, uri).stdout)
    assert _children(pid)  # drawing processes while scripts come
    assert _rss_mb(pid) > 150  # MLflow is loaded
    deadline = time.monotonic() + QUIET + 30
    while (_children(pid) or _rss_mb(pid) > 100) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _children(pid) == []
    assert _rss_mb(pid) < 100  # rested: MLflow, pandas and the store are let go of
    log = next(Path(env["TIDYMLFLOW_JOURNAL_DIR"]).rglob("writer.log")).read_text()
    assert "resting: " in log
    assert _writer_pid(_run(tmp_path, env, uri).stdout) == pid
    assert _children(pid)  # back with the script
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    for run in _runs(uri):
        assert run.info.status == "FINISHED"
        files = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert "plots/residual_diagnostics.png" in files


#: Put on a script's PYTHONPATH: every process started from it notes which of the watched
#: libraries it imports, with its pid (forked helpers note their own pid).
WATCH = r'''
import os, sys

class _Watch:
    def find_spec(self, name, path=None, target=None):
        if name in ("py_parsnip", "matplotlib", "plotly"):
            with open(os.environ["IMPORT_LOG"], "a") as fh:
                fh.write(f"{os.getpid()} {name}\n")
        return None

sys.meta_path.insert(0, _Watch())
'''

MODEL_SCRIPT = r'''
import os
import tidymlflow
tidymlflow.autolog(log_models=True)
import numpy as np, pandas as pd
from py_parsnip import linear_reg
from py_workflows import workflow
rng = np.random.default_rng(0)
df = pd.DataFrame({"x1": rng.normal(size=120), "x2": rng.normal(size=120)})
df["y"] = 1 + 2 * df.x1 - df.x2 + rng.normal(scale=0.3, size=120)
fit = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg()).fit(df.iloc[:90])
fit.evaluate(df.iloc[90:])
print("script", os.getpid(), "writer", tidymlflow._writer.client.current().writer_pid(), flush=True)
'''


def test_the_writer_leaves_modelling_and_plotting_libraries_to_its_helpers(tmp_path, env):
    """The writer holds MLflow alone (that is what keeps it small while idle): a fit is packaged
    as a model, and plots are drawn, in its helper processes, which import py-tidymodels and the
    plotting libraries; the model is logged all the same and predicts like the fit."""
    hook, log = tmp_path / "hook", tmp_path / "imports.log"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(WATCH)
    (tmp_path / "model.py").write_text(MODEL_SCRIPT)
    uri = f"sqlite:///{tmp_path / 'a.db'}"
    path = os.pathsep.join(p for p in (str(hook), env.get("PYTHONPATH")) if p)
    out = subprocess.run([sys.executable, "model.py"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=180, env={**env, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": path,
                                           "IMPORT_LOG": str(log)})
    assert out.returncode == 0, out.stderr
    words = next(line for line in out.stdout.splitlines() if line.startswith("script ")).split()
    script, writer = int(words[1]), int(words[3])
    imported: dict[str, set[int]] = {}
    for line in log.read_text().splitlines():
        pid, name = line.split()
        imported.setdefault(name, set()).add(int(pid))
    assert script in imported["py_parsnip"]  # the hook sees imports
    assert writer not in imported["py_parsnip"] | imported["matplotlib"] | imported["plotly"]
    assert imported["py_parsnip"] - {script} and imported["matplotlib"] - {script}  # a helper did
    import mlflow
    from mlflow import MlflowClient

    run = _runs(uri)[0]
    model_id = run.data.tags["tidymlflow.model_uri"].removeprefix("models:/")
    logged = MlflowClient(uri).get_logged_model(model_id)
    assert logged.source_run_id == run.info.run_id and logged.name == "model"
    local = mlflow.artifacts.download_artifacts(artifact_uri=logged.artifact_location, tracking_uri=uri)
    model = mlflow.pyfunc.load_model(local)
    assert model.metadata.flavors["tidymlflow"]["kind"] == "WorkflowFit"
    assert (model.metadata.run_id, model.metadata.model_id) == (run.info.run_id, model_id)


def test_a_writer_whose_files_vanished_still_leaves_when_idle(tmp_path, monkeypatch):
    """A writer started from a virtual environment that is then deleted (a CI job's, say) cannot
    read its code's files any more: it must not rest then, and it must still leave at its idle
    time (once, the failed check killed the thread that leaves and the writer stayed for good)."""
    import socket as _socket
    import threading

    from tidymlflow._writer import rendezvous, server

    def vanished() -> str:
        gone = tmp_path / ".venv" / "mlflow" / "__init__.py"
        raise FileNotFoundError(2, "No such file or directory", str(gone))

    monkeypatch.setattr(rendezvous, "key", vanished)
    path, lock = str(tmp_path / "w.sock"), str(tmp_path / "writers.lock")
    listener = _socket.socket(_socket.AF_UNIX)
    listener.bind(path)
    listener.listen()
    hall = server.Hall(listener, path, lock, idle=100.0, plotter=None)
    hall.rest_after, hall.may_rest = 0.0, True  # it would rest at once, if its files were there
    hall.idle_since = time.monotonic() - 1.0
    accepting = threading.Thread(target=hall._accept)
    accepting.start()
    time.sleep(2.5)  # it has looked at its files (every second) and found them gone
    assert accepting.is_alive() and not hall.resting and hall.rest_after == math.inf
    hall.idle = 0.5  # its idle time is up
    accepting.join(timeout=30)
    assert not accepting.is_alive() and hall.closed and not hall.resting  # it left, it did not rest
    assert not os.path.exists(path)
