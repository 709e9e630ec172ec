"""Faults made for real, around a user's script run as its own process with the writer process:
a closed port, a server that accepts and never answers, a server killed while the script runs, a
full disk (tmpfs) under the artifact store, Ctrl-C, and the writer killed. In every case the
script finishes with its results, nothing hangs, no run stays RUNNING, and ``tidymlflow sync``
delivers what was kept, once."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servers import free_port, hung_server, mlflow_server

from tidymlflow._writer.scheduler import ADOPT_AFTER

#: These scripts run the writer process whatever TIDYMLFLOW_WRITER says, so the suite's inline
#: pass leaves them out (they would run the very same thing twice).
pytestmark = pytest.mark.writer_process

SCRIPT = r'''
import os, sys, time
import tidymlflow
tidymlflow.autolog()
import numpy as np, pandas as pd
from py_parsnip import linear_reg
from py_rsample import vfold_cv
from py_tune import grid_regular, tune, tune_grid
from py_workflows import workflow

print("writer", tidymlflow._writer.client.current().writer_pid(), flush=True)
rng = np.random.default_rng(0)
n = 120
df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n)})
df["y"] = 1 + 2 * df.x1 - df.x2 + rng.normal(scale=0.3, size=n)
mode = sys.argv[1]
fit = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg()).fit(df.iloc[:90])
fit.evaluate(df.iloc[90:])
print("fitted", flush=True)
if mode == "kill-writer":
    tidymlflow.flush(timeout=120)
    os.kill(tidymlflow._writer.client.current().writer_pid(), 9)
    time.sleep(1)
    fit = workflow().add_formula("y ~ x1").add_model(linear_reg()).fit(df.iloc[:90])
    tidymlflow.flush(timeout=120)
if mode == "wait":
    sys.stdin.readline()
if mode in ("tune", "wait", "interrupt"):
    wf = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg(penalty=tune()))
    levels = 60 if mode == "interrupt" else 4
    if mode == "interrupt":
        import signal, threading
        # Ctrl-C raises KeyboardInterrupt even when this process was started with SIGINT ignored
        # (as a background job of a non-interactive shell is)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    grid = grid_regular({"penalty": {"range": (0.01, 1.0)}}, levels=levels)
    tune_grid(wf, vfold_cv(df, v=5, seed=1), grid=grid)
print("done", flush=True)
'''


@pytest.fixture
def env(tmp_path, monkeypatch):
    """The script's environment: the writer process, a journal of this test, not strict (a
    user's script), short HTTP settings as a user would not have to set."""
    values = {**os.environ, "TIDYMLFLOW_WRITER": "process", "TIDYMLFLOW_STRICT": "0",
              "TIDYMLFLOW_JOURNAL_DIR": str(tmp_path / "journal"), "MLFLOW_DISABLE_TELEMETRY": "true"}
    for key in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_EXPERIMENT_ID",
                "MLFLOW_EXPERIMENT_NAME"):
        values.pop(key, None)
    (tmp_path / "script.py").write_text(SCRIPT)
    return values


def _script(tmp_path: Path, env: dict[str, str], uri: str, mode: str, timeout: float = 180,
            **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(tmp_path / "script.py"), mode], cwd=tmp_path,
                          capture_output=True, text=True, timeout=timeout,
                          env={**env, "MLFLOW_TRACKING_URI": uri, **extra})


def _sync(env: dict[str, str], uri: str | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "tidymlflow", "sync"] + (["--tracking-uri", uri] if uri else [])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def _writer_gone(pid: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.2)
    raise AssertionError(f"the writer {pid} is still running after {timeout} s:\n{_stacks(pid)}")


def _stacks(pid: int) -> str:
    """The end of a writer's log after it was asked for its threads' stacks (SIGUSR1), and the
    processes at the other end of its connections (a writer stays while a script is connected)."""
    try:
        log = os.readlink(f"/proc/{pid}/fd/2")
        os.kill(pid, signal.SIGUSR1)
        time.sleep(1.0)
        return Path(log).read_text(errors="replace")[-20000:] + _peers(pid)
    except OSError as exc:
        return f"(no stacks: {exc})"


def _peers(pid: int) -> str:
    """The processes holding the other end of the writer's unix connections (``ss -xp``), with
    their command lines."""
    try:
        lines = subprocess.run(["ss", "-xpn"], capture_output=True, text=True, timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"\n(no peers: {exc})"
    rows = [line.split() for line in lines if line.startswith("u_str")]
    ours = {row[7] for row in rows if len(row) > 8 and f"pid={pid}," in row[8] and row[1] == "ESTAB"}
    held = [" ".join(row[8:]) for row in rows if len(row) > 8 and row[5] in ours]
    found = []
    for entry in held:
        for other in re.findall(r"pid=(\d+)", entry):
            with contextlib.suppress(OSError):
                found.append(f"{other}: " + Path(f"/proc/{other}/cmdline").read_text().replace("\0", " "))
    return "\nconnected to the writer: " + ("; ".join(found) or "nobody")


def _writer_pid(out: str) -> int:
    return int(next(line for line in out.splitlines() if line.startswith("writer ")).split()[1])


def _left_behind(env: dict[str, str], wait: float = 10.0) -> list[int]:
    """Processes still running with this test's journal (a writer or its plotting process),
    after up to ``wait`` seconds."""
    marker = f"TIDYMLFLOW_JOURNAL_DIR={env['TIDYMLFLOW_JOURNAL_DIR']}".encode()
    deadline = time.monotonic() + wait
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and entry.name != str(os.getpid()):
                with contextlib.suppress(OSError):
                    if marker in (entry / "environ").read_bytes().split(b"\0"):
                        found.append(int(entry.name))
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _kept(env: dict[str, str]) -> list[str]:
    root = Path(env["TIDYMLFLOW_JOURNAL_DIR"])
    return sorted(str(p.parent) for p in root.glob("*/*/manifest.json"))


def _tree(uri: str, experiment: str = "0") -> dict:
    """Every run of an experiment: name -> (status, params, metric keys, tag keys, files, parent name)."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([experiment], max_results=1000)
    names = {r.info.run_id: r.info.run_name for r in runs}

    def files(run_id: str, path: str | None = None) -> set[str]:
        found: set[str] = set()
        for a in client.list_artifacts(run_id, path):
            found |= files(run_id, a.path) if a.is_dir else {a.path}
        return found

    ignored = {"tidymlflow.handle", "mlflow.parentRunId", "mlflow.source.name", "mlflow.source.git.commit"}
    tree = {}
    for r in runs:
        key = r.info.run_name
        assert key not in tree, f"two runs named {key!r}: a duplicate"
        tree[key] = (r.info.status, dict(r.data.params), sorted(r.data.metrics),
                     sorted(set(r.data.tags) - ignored), sorted(files(r.info.run_id)),
                     names.get(r.data.tags.get("mlflow.parentRunId")))
    return tree


def _experiment(uri: str, name: str) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else client.create_experiment(name)


# -- a closed port -------------------------------------------------------------------------------------
def test_closed_port_keeps_everything_and_sync_delivers_it_once(tmp_path, env):
    port = free_port()  # nothing listens here
    uri = f"http://127.0.0.1:{port}"
    run = _script(tmp_path, env, uri, "tune", timeout=120)
    assert run.returncode == 0, run.stderr
    assert "done" in run.stdout
    assert run.stderr.count("could not write to MLflow") == 1, run.stderr
    _writer_gone(_writer_pid(run.stdout))
    assert len(_kept(env)) == 3  # fit, evaluate, tune_grid

    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts", tmp_path / "server.log",
                       port=port):
        first = _sync(env)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "wrote 3 call(s), 6 run(s)" in first.stdout
        assert _kept(env) == []
        replayed = _tree(uri)
        again = _sync(env)
        assert again.returncode == 0 and "nothing to write" in again.stdout
        assert _tree(uri) == replayed  # no duplicates

        direct_experiment = _experiment(uri, "direct")
        direct = _script(tmp_path, env, uri, "tune", MLFLOW_EXPERIMENT_ID=direct_experiment)
        assert direct.returncode == 0, direct.stderr
        _writer_gone(_writer_pid(direct.stdout))
        # the replayed tree is the tree logged directly: runs, nesting, params, metrics, tags, files
        assert replayed == _tree(uri, direct_experiment)
    assert all(status == "FINISHED" for status, *_ in replayed.values())
    fit_run = replayed["linear_reg: y ~ x1 + x2"]
    assert {"train_rmse", "test_rmse"} <= set(fit_run[2])
    assert "tidymodels/outputs.parquet" in fit_run[4] and "plots/residual_diagnostics.png" in fit_run[4]


# -- a server that accepts and never answers ------------------------------------------------------------
def test_hung_server_never_stalls_the_script_and_sync_delivers_later(tmp_path, env):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    with hung_server(port):
        run = _script(tmp_path, env, uri, "fit", timeout=120, TIDYMLFLOW_EXIT_TIMEOUT="3",
                      MLFLOW_HTTP_REQUEST_TIMEOUT="3")
        assert run.returncode == 0, run.stderr
        assert "done" in run.stdout
        # the exit wait is bounded: the writer was left to finish in the background
        assert "goes on in the background" in run.stderr or "could not write" in run.stderr, run.stderr
        _writer_gone(_writer_pid(run.stdout))
    assert len(_kept(env)) == 2
    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts", tmp_path / "server.log",
                       port=port):
        synced = _sync(env, uri)
        assert synced.returncode == 0, synced.stdout + synced.stderr
        tree = _tree(uri)
    assert list(tree) == ["linear_reg: y ~ x1 + x2"]
    status, _, metrics, *_ = tree["linear_reg: y ~ x1 + x2"]
    assert status == "FINISHED" and {"train_rmse", "test_rmse"} <= set(metrics)


# -- a server killed while the script runs --------------------------------------------------------------
def test_server_killed_mid_script_leaves_nothing_running_after_sync(tmp_path, env):
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    backend, artifacts = f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts"
    proc = None
    with mlflow_server(backend, artifacts, tmp_path / "server1.log", port=port):
        proc = subprocess.Popen([sys.executable, str(tmp_path / "script.py"), "wait"], cwd=tmp_path,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env={**env, "MLFLOW_TRACKING_URI": uri})
        assert proc.stdout is not None and proc.stdin is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines[1].startswith("fitted"), lines
    # the server is gone (killed with its process group); the script tunes now
    proc.stdin.write("\n")
    proc.stdin.flush()
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    _writer_gone(int(lines[0].split()[1]))
    with mlflow_server(backend, artifacts, tmp_path / "server2.log", port=port):
        synced = _sync(env, uri)
        assert synced.returncode == 0, synced.stdout + synced.stderr
        tree = _tree(uri)
    assert sorted(tree) == sorted(["linear_reg: y ~ x1 + x2", "tune_grid: linear_reg",
                                   *(n for n in tree if n.startswith("#"))])
    assert len([n for n in tree if n.startswith("#")]) == 4
    assert {status for status, *_ in tree.values()} == {"FINISHED"}
    assert {"train_rmse", "test_rmse"} <= set(tree["linear_reg: y ~ x1 + x2"][2])


# -- a full disk under the artifact store ----------------------------------------------------------
def test_full_disk_marks_runs_incomplete_leaves_no_partial_files_and_sync_completes(tmp_path, env, tiny_disk):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("disk", artifact_location=str(tiny_disk / "artifacts"))
    filler = tiny_disk / "filler"
    filler.write_bytes(b"x" * (1024 * 1024 - 60 * 1024))  # about 60 KiB left: the plots do not fit
    run = _script(tmp_path, env, uri, "fit", MLFLOW_EXPERIMENT_ID=experiment)
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("could not write to MLflow") == 1, run.stderr
    _writer_gone(_writer_pid(run.stdout))
    [logged] = client.search_runs([experiment])
    assert logged.info.status == "FAILED"
    missing = logged.data.tags["tidymlflow.incomplete"]
    assert "files not written" in missing and "No space left" in missing
    on_disk = [p for p in (tiny_disk / "artifacts").rglob("*") if p.is_file()]
    assert all(p.stat().st_size > 0 for p in on_disk), "a partial file was left behind"
    assert _kept(env)

    filler.unlink()
    synced = _sync(env, uri)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    [done] = client.search_runs([experiment])
    assert done.info.run_id == logged.info.run_id and done.info.status == "FINISHED"
    assert "tidymlflow.incomplete" not in done.data.tags
    files = {a.path for a in client.list_artifacts(done.info.run_id, "plots")}
    assert "plots/residual_diagnostics.png" in files
    assert _kept(env) == []


# -- Ctrl-C ---------------------------------------------------------------------------------------------
def test_ctrl_c_propagates_at_once_and_what_was_handed_over_is_written(tmp_path, env):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    run = _script(tmp_path, env, uri, "interrupt")
    assert run.returncode != 0 and "KeyboardInterrupt" in run.stderr, run.stderr
    assert "done" not in run.stdout
    _writer_gone(_writer_pid(run.stdout))
    runs = {r.info.run_name: r for r in MlflowClient(uri).search_runs(["0"], max_results=1000)}
    fit = runs.pop("linear_reg: y ~ x1 + x2")
    assert fit.info.status == "FINISHED" and "test_rmse" in fit.data.metrics
    assert set(runs) == {"tune_grid: linear_reg"}, set(runs)  # interrupted inside the tuner
    tuner = runs["tune_grid: linear_reg"]
    assert tuner.info.status == "KILLED"
    assert tuner.data.tags["tidymlflow.error"].startswith("KeyboardInterrupt")
    assert _kept(env) == [] and not list(Path(env["TIDYMLFLOW_JOURNAL_DIR"]).glob("*/*/r0"))


# -- the writer killed ----------------------------------------------------------------------------------
def test_writer_killed_warns_once_never_hangs_and_the_journal_keeps_the_rest(tmp_path, env):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    run = _script(tmp_path, env, uri, "kill-writer", timeout=120)
    assert run.returncode == 0, run.stderr
    assert "done" in run.stdout
    assert run.stderr.count("the writer process stopped") == 1, run.stderr
    assert _left_behind(env) == []  # the writer's plotting process went with it
    assert len(_kept(env)) == 1
    client = MlflowClient(uri)
    assert [r.info.run_name for r in client.search_runs(["0"])] == ["linear_reg: y ~ x1 + x2"]
    synced = _sync(env, uri)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    names = sorted(r.info.run_name for r in client.search_runs(["0"]))
    assert names == ["linear_reg: y ~ x1", "linear_reg: y ~ x1 + x2"]
    assert {r.info.status for r in client.search_runs(["0"])} == {"FINISHED"}



def test_the_next_scripts_writer_writes_what_a_killed_writer_left(tmp_path, env):
    """Jobs a killed writer left behind are written by the next script's writer once their
    script has ended, with no `tidymlflow sync`: every run FINISHED, the journal empty."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    killed = _script(tmp_path, env, uri, "kill-writer", timeout=120)
    assert killed.returncode == 0 and len(_kept(env)) == 1, killed.stderr
    time.sleep(ADOPT_AFTER)  # the job is old enough to be taken over
    nxt = _script(tmp_path, env, uri, "fit", timeout=120)
    assert nxt.returncode == 0, nxt.stderr
    client = MlflowClient(uri)
    deadline = time.monotonic() + 60
    while _kept(env) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _kept(env) == []
    names = sorted(r.info.run_name for r in client.search_runs(["0"]))
    assert names == ["linear_reg: y ~ x1", "linear_reg: y ~ x1 + x2", "linear_reg: y ~ x1 + x2"]
    assert {r.info.status for r in client.search_runs(["0"])} == {"FINISHED"}


def test_a_create_run_sent_twice_leaves_one_run(tmp_path, monkeypatch, split):
    """MLflow's HTTP client sends a request again when its answer is late. A ``create_run`` the
    server acted on but answered late made a second run with the same handle, left RUNNING for
    good; now the twin is deleted: one run per handle, none RUNNING."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType
    from py_parsnip import linear_reg
    from py_workflows import workflow
    from servers import late_answers

    import tidymlflow

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    backend = f"sqlite:///{tmp_path / 'server.db'}"
    with mlflow_server(backend, tmp_path / "artifacts", tmp_path / "server.log") as url, \
            late_answers(url, "/runs/create", delay=3.0) as proxy:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy)
        import mlflow

        mlflow.set_tracking_uri(proxy)
        experiment = mlflow.set_experiment("twins").experiment_id  # this server's, not a former one
        tidymlflow.autolog(writer="inline")
        fitted = workflow().add_formula("y ~ x1 + x2").add_model(linear_reg()).fit(split[0])
        run_id = tidymlflow.run_id(fitted)
        client = MlflowClient(url)
        every = client.search_runs([experiment], run_view_type=ViewType.ALL)
        alive = client.search_runs([experiment])
    assert len(every) == 2  # the server did create a twin
    assert [r.info.run_id for r in alive] == [run_id]
    assert alive[0].info.status == "FINISHED" and "train_rmse" in alive[0].data.metrics
    assert all(r.info.status != "RUNNING" or r.info.lifecycle_stage == "deleted" for r in every)


def test_a_slow_server_delays_no_other_store(tmp_path, monkeypatch, split):
    """A server that answers every request late holds up only its own jobs (written in a lane of
    their own): a fit logged meanwhile to a local sqlite store is written in seconds, not after
    the slow server's jobs; those are complete in the end."""
    import mlflow
    from helpers import linear_wf
    from mlflow import MlflowClient
    from servers import late_answers

    import tidymlflow

    monkeypatch.setenv("TIDYMLFLOW_WRITER", "process")
    train = split[0]
    backend = f"sqlite:///{tmp_path / 'server.db'}"
    with mlflow_server(backend, tmp_path / "artifacts", tmp_path / "server.log") as url, \
            late_answers(url, "", delay=0.6, times=10**6) as slow:
        mlflow.set_tracking_uri(slow)
        far = mlflow.set_experiment("far").experiment_id
        tidymlflow.autolog()
        linear_wf().fit(train)  # a job of some 20 late requests
        local = f"sqlite:///{tmp_path / 'local.db'}"
        mlflow.set_tracking_uri(local)
        mlflow.set_experiment("near")
        start = time.monotonic()
        near = tidymlflow.run_id(linear_wf().fit(train), timeout=300)
        took = time.monotonic() - start
        tidymlflow.flush(timeout=600)
        behind = time.monotonic() - start
        far_runs = MlflowClient(url).search_runs([far])
    assert near is not None and MlflowClient(local).get_run(near).info.status == "FINISHED"
    assert took < 6 < behind, (took, behind)  # it used to wait for the slow server's jobs
    assert [r.info.status for r in far_runs] == ["FINISHED"] and "train_rmse" in far_runs[0].data.metrics


# -- the journal is private and holds no credential -------------------------------------------------------
def test_kept_jobs_are_private_hold_no_credential_and_only_the_owner_replays_them(tmp_path, env):
    """With the usual umask (0022) and credentials in the environment, a job kept for a closed
    port is in folders only its owner can enter (0700), files only its owner can read (0600), and
    no file holds a credential. ``tidymlflow sync`` refuses a journal folder that others can
    write, or that another user owns, and keeps its jobs."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    secrets = {"MLFLOW_TRACKING_USERNAME": "alice-user-7f3a", "MLFLOW_TRACKING_PASSWORD": "pw-7f3a-secret",
               "MLFLOW_TRACKING_TOKEN": "token-7f3a-secret"}
    old = os.umask(0o022)
    try:
        run = _script(tmp_path, env, uri, "fit", timeout=120, **secrets)
    finally:
        os.umask(old)
    assert run.returncode == 0, run.stderr
    _writer_gone(_writer_pid(run.stdout))
    kept = _kept(env)
    assert len(kept) == 2  # fit, evaluate
    root = Path(env["TIDYMLFLOW_JOURNAL_DIR"])
    paths = [root, *root.rglob("*")]
    assert any(p.suffix == ".parquet" for p in paths)  # the staged training data is there
    for path in paths:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path}: {mode:o}"
        if path.is_file():
            content = path.read_bytes()
            assert not [v for v in secrets.values() if v.encode() in content], path

    journal = Path(kept[0]).parent
    journal.chmod(0o777)
    refused = _sync(env)
    assert refused.returncode == 1 and "not replayed" in refused.stdout
    assert "writable by others" in refused.stdout
    assert _kept(env) == kept
    journal.chmod(0o700)
    if os.geteuid() == 0:  # a second local user's folder: as root the test can make one
        os.chown(journal, 65534, 65534)
        refused = _sync(env)
        assert refused.returncode == 1 and "owned by another user" in refused.stdout, refused.stdout
        assert _kept(env) == kept
        os.chown(journal, os.getuid(), os.getgid())


def test_sync_from_python_leaves_the_callers_mlflow_state_as_it_was(tmp_path, env, monkeypatch):
    """``tidymlflow.sync.sync()`` replays a job of another script (its own tracking URI, folder and
    experiment) and gives the caller back its tracking URI, experiment, working folder and
    environment; a trailing slash on ``--tracking-uri`` matches the journal."""
    import mlflow
    from mlflow.tracking import fluent

    from tidymlflow import sync as sync_module

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    run = _script(tmp_path, env, uri, "fit", timeout=120)
    assert run.returncode == 0, run.stderr
    _writer_gone(_writer_pid(run.stdout))
    assert len(_kept(env)) == 2

    monkeypatch.setenv("TIDYMLFLOW_JOURNAL_DIR", env["TIDYMLFLOW_JOURNAL_DIR"])
    mine = f"sqlite:///{tmp_path / 'mine.db'}"
    mlflow.set_tracking_uri(mine)
    experiment = mlflow.set_experiment("callers-own").experiment_id
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    environ = dict(os.environ)
    with mlflow_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts", tmp_path / "server.log",
                       port=port):
        reports = sync_module.sync(uri + "/")
    assert [(r.delivered, r.left) for r in reports] == [(2, 0)], reports
    assert mlflow.get_tracking_uri() == mine and fluent._active_experiment_id == experiment
    assert os.getcwd() == str(elsewhere) and dict(os.environ) == environ
    assert _kept(env) == []
    mlflow.set_tracking_uri(None)
