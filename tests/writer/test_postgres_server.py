"""A team set-up: ``mlflow server`` on a throwaway PostgreSQL cluster, with proxied artifacts.

The session fixture ``postgres`` makes a new cluster with ``initdb`` in a temporary folder,
listening on 127.0.0.1 only, on a free port, with a password for TCP connections. PostgreSQL
refuses to run as root: as root the cluster belongs to the ``postgres`` system user (created by
Debian's ``postgresql`` package) and ``initdb`` / ``pg_ctl`` run as that user
(``subprocess`` with ``user=``); as any other user they run as that user. ``mlflow server`` then
stores runs in it and proxies artifacts to a temporary folder (``--serve-artifacts``); the tests
log through it with ``tidymlflow.autolog()`` and read everything back with ``MlflowClient``.

The binaries are looked up in ``/usr/lib/postgresql/<version>/bin`` (Debian) and on ``PATH``. Where
they are missing the tests skip, except under CI (``CI=true``), where they fail: ``.ci/run``
installs them. Select these tests with ``-k postgres``.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import secrets
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pandas as pd
import pytest
from helpers import top_runs
from servers import START_TIMEOUT_S, free_port, in_ci, mlflow_server, tail

import tidymlflow


def _pg_bindir() -> Path | None:
    """The newest Debian PostgreSQL ``bin`` folder, else the one holding ``initdb`` on PATH."""
    found = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    if found:
        def version(p: Path) -> tuple:
            return tuple(int(x) if x.isdigit() else 0 for x in p.parent.name.split("."))

        return max(found, key=version)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class Cluster:
    """A running throwaway PostgreSQL cluster."""

    def __init__(self, bindir: Path, root: Path, port: int, user: str, password: str, run_as):
        self.bindir, self.root, self.port = bindir, root, port
        self.user, self.password, self.run_as = user, password, run_as
        self.data, self.log = root / "data", root / "postgres.log"

    def url(self, database: str, driver: str = "") -> str:
        """A libpq URL, or with ``driver="psycopg"`` a SQLAlchemy one for that driver."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"

    def pg(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """A PostgreSQL server binary, as the cluster's owner."""
        return subprocess.run([str(self.bindir / args[0]), *args[1:]], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, cwd=self.root,
                              **self.run_as)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.pg("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "60")


@contextlib.contextmanager
def _cluster():
    bindir = _pg_bindir()
    if bindir is None:
        reason = ("PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin "
                  "or on PATH; install them (Debian: apt-get install postgresql)")
        if in_ci():
            pytest.fail(f"CI=true but {reason}; .ci/run should have installed them", pytrace=False)
        pytest.skip(reason)
    if importlib.util.find_spec("psycopg") is None:
        pytest.fail("mlflow needs a PostgreSQL driver for postgresql+psycopg:// stores: "
                    "pip install 'psycopg[binary]'", pytrace=False)
    run_as: dict = {}
    if os.geteuid() == 0:  # postgres refuses root: the cluster belongs to the postgres system user
        import pwd

        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root, PostgreSQL needs a non-root owner: no 'postgres' system user "
                        "(Debian's postgresql package creates it)", pytrace=False)
        run_as = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    # in /tmp itself (not under pytest's root-only basetemp), so that the postgres user can reach it
    root = Path(tempfile.mkdtemp(prefix="tidymlflow-pg-"))
    if run_as:
        os.chown(root, run_as["user"], run_as["group"])
        run_as["env"] = {**os.environ, "HOME": str(root)}
    cluster = Cluster(bindir, root, free_port(), "mlflow", secrets.token_hex(12), run_as)
    try:
        pwfile = root / "pwfile"
        pwfile.write_text(cluster.password + "\n")
        if run_as:
            os.chown(pwfile, run_as["user"], run_as["group"])
        init = cluster.pg("initdb", "-D", str(cluster.data), "-U", cluster.user, f"--pwfile={pwfile}",
                          "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8",
                          "--locale=C", "--no-sync")
        pwfile.unlink()
        assert init.returncode == 0, f"initdb failed:\n{init.stdout}\n{init.stderr}"
        options = (f"-c listen_addresses=127.0.0.1 -c port={cluster.port} "
                   f"-c unix_socket_directories='{root}' -c fsync=off -c max_connections=50")
        start = cluster.pg("pg_ctl", "start", "-D", str(cluster.data), "-l", str(cluster.log),
                           "-o", options, "-w", "-t", str(START_TIMEOUT_S))
        assert start.returncode == 0, (f"pg_ctl start failed:\n{start.stdout}\n{start.stderr}\n"
                                       f"{tail(cluster.log)}")
        create = subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(cluster.port),
                                 "-U", cluster.user, "mlflow"], stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=60,
                                env={**os.environ, "PGPASSWORD": cluster.password})
        assert create.returncode == 0, f"createdb failed:\n{create.stderr}\n{tail(cluster.log)}"
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    with _cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def postgres_server(postgres):
    with tempfile.TemporaryDirectory(prefix="tidymlflow-pgserver-") as tmp:
        with mlflow_server(postgres.url("mlflow", driver="psycopg"), Path(tmp) / "artifacts",
                            Path(tmp) / "server.log") as url:
            yield url


@pytest.fixture
def pg_store(postgres_server, monkeypatch, tmp_path):
    """A new experiment on the PostgreSQL-backed server, its artifacts through the server's proxy."""
    import mlflow
    from conftest import Store

    monkeypatch.setenv("MLFLOW_TRACKING_URI", postgres_server)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")  # a real server on a busy CI machine
    mlflow.set_tracking_uri(postgres_server)
    client = mlflow.MlflowClient(postgres_server)
    exp = client.create_experiment(f"postgres-{uuid.uuid4().hex}")
    assert client.get_experiment(exp).artifact_location.startswith("mlflow-artifacts:")
    mlflow.set_experiment(experiment_id=exp)
    yield Store(client, exp, tmp_path)
    while mlflow.active_run() is not None:
        mlflow.end_run()


def _wf(formula="y ~ x1 + x2", **args):
    from py_parsnip import linear_reg
    from py_workflows import workflow

    return workflow().add_formula(formula).add_model(linear_reg(**args))


def _only_top_run(store):
    (parent,) = top_runs(store)
    return parent


def test_postgres_workflowset_fit_resamples_parent_and_children(pg_store, split):
    tidymlflow.autolog()
    from py_parsnip import linear_reg
    from py_rsample import vfold_cv
    from py_workflowsets import WorkflowSet

    ws = WorkflowSet.from_cross(["y ~ x1", "y ~ x1 + x2", "y ~ x2"], [linear_reg()])
    results = ws.fit_resamples(vfold_cv(split[0], v=3, seed=7))

    parent = _only_top_run(pg_store)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["tidymlflow.call"] == "WorkflowSet.fit_resamples"
    assert parent.data.params["n_workflows"] == "3"
    children = pg_store.children(parent)
    assert sorted(c.data.tags["wflow_id"] for c in children) == sorted(ws.workflow_ids)
    assert len(pg_store.runs()) == 4
    ranked = results.rank_results("rmse", n=3)["wflow_id"].tolist()
    ranks = {c.data.tags["wflow_id"]: int(c.data.tags["rank"]) for c in children}
    assert sorted(ranks, key=ranks.get) == ranked
    assert parent.data.params["best_wflow_id"] == ranked[0]
    summary = results.collect_metrics().set_index(["wflow_id", "metric"])
    for child in children:
        expected = summary.loc[(child.data.tags["wflow_id"], "rmse"), "mean"]
        assert child.data.metrics["cv_rmse_mean"] == pytest.approx(expected)
    # artifacts went through the server's proxy and come back the same way
    table = pg_store.table(parent, "workflowset/rank_results.parquet")
    assert table["wflow_id"].tolist() == ranked


def test_postgres_tune_grid_parent_and_a_child_per_candidate(pg_store, split):
    tidymlflow.autolog()
    from py_rsample import vfold_cv
    from py_tune import grid_regular, tune, tune_grid

    grid = grid_regular({"penalty": {"range": (0.01, 1.0)}}, levels=3)
    results = tune_grid(_wf(penalty=tune()), vfold_cv(split[0], v=3, seed=1), grid=grid)

    parent = _only_top_run(pg_store)
    assert parent.data.params["tune.method"] == "grid"
    assert parent.data.params["tune.n_candidates"] == "3"
    children = pg_store.children(parent)
    assert sorted(c.data.tags["tune.config"] for c in children) == sorted(grid[".config"])
    best = results.select_best("rmse", maximize=False)
    (winner,) = [c for c in children if c.data.tags["rank"] == "1"]
    assert float(winner.data.params["args.penalty"]) == pytest.approx(best["penalty"])
    assert parent.data.metrics["best_cv_rmse_mean"] == pytest.approx(winner.data.metrics["cv_rmse_mean"])
    summary = pg_store.table(parent, "tune/summary.parquet")
    assert len(summary) == 3


def test_postgres_nested_fit_and_evaluate_in_the_same_runs(pg_store, data):
    tidymlflow.autolog()
    train = data.groupby("store").head(30)
    test = data.groupby("store").tail(10)
    nested = _wf().fit_nested(train, "store", per_group_prep=False)
    run_ids = {r.info.run_id for r in pg_store.runs()}
    nested.evaluate(test)

    assert {r.info.run_id for r in pg_store.runs()} == run_ids  # evaluate made no new run
    parent = _only_top_run(pg_store)
    assert parent.data.tags["tidymlflow.call"] == "Workflow.fit_nested"
    assert parent.data.params["group_col"] == "store"
    children = pg_store.children(parent)
    assert sorted(c.data.tags["group"] for c in children) == ["A", "B", "C", "D"]
    stats = nested.extract_outputs()[2]
    for child in children:
        rows = stats[(stats["store"] == child.data.tags["group"]) & (stats["split"] == "test")
                     & (stats["metric"] == "rmse")]
        assert child.data.metrics["test_rmse"] == pytest.approx(float(rows["value"].iloc[0]))
        assert "train_rmse" in child.data.metrics
    assert {"train_rmse_mean", "test_rmse_mean"} <= set(parent.data.metrics)
    outputs = pg_store.table(parent, "tidymodels/outputs.parquet")
    assert set(outputs["split"]) == {"train", "test"}
    plots = {a.path for a in pg_store.client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/per_group_heatmap.png" in plots


def test_postgres_holds_the_runs(pg_store, postgres, split):
    """The runs the server reports are rows of the PostgreSQL database, not of some fallback store."""
    import psycopg

    tidymlflow.autolog()
    _wf().fit(split[0])
    (run,) = pg_store.runs()
    with contextlib.closing(psycopg.connect(postgres.url("mlflow"))) as conn, conn.cursor() as cur:
        cur.execute("select name, status from runs where run_uuid = %s", (run.info.run_id,))
        assert cur.fetchall() == [(run.info.run_name, "FINISHED")]
        cur.execute("select value from params where run_uuid = %s and key = 'model_type'",
                    (run.info.run_id,))
        assert cur.fetchall() == [("linear_reg",)]
    assert isinstance(pg_store.table(run, "tidymodels/stats.parquet"), pd.DataFrame)
