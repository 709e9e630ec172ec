"""Provenance read in the script's process (``tidymlflow._recording.provenance``) gives what
MLflow's own context providers give (they read git through GitPython), in a plain checkout, on
a branch whose ref is packed, with a detached HEAD, in a linked worktree and outside any
repository, without importing MLflow or GitPython."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tidymlflow._recording import provenance


def _git(where, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=where, check=True, capture_output=True, text=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path):
    where = tmp_path / "repo"
    where.mkdir()
    _git(where, "init", "-q", "-b", "trunk")
    _git(where, "config", "user.email", "test@example.com")
    _git(where, "config", "user.name", "test")
    _git(where, "remote", "add", "upstream", "git@example.com:team/repo.git")
    (where / "train.py").write_text("print(1)\n")
    _git(where, "add", "train.py")
    _git(where, "commit", "-q", "-m", "one")
    return where


def _mlflow_view(path: str) -> dict[str, str]:
    from mlflow.utils.git_utils import get_git_branch, get_git_commit, get_git_repo_url

    found = {provenance.GIT_COMMIT: get_git_commit(path), provenance.GIT_BRANCH: get_git_branch(path),
             provenance.GIT_REPO_URL: get_git_repo_url(path)}
    return {k: v for k, v in found.items() if v is not None}


def test_a_plain_checkout_reads_as_mlflow_reads_it(repo):
    script = str(repo / "train.py")
    assert provenance.git_info(script) == _mlflow_view(script)
    assert provenance.git_info(script)[provenance.GIT_BRANCH] == "trunk"


def test_a_packed_ref_and_a_detached_head(repo):
    _git(repo, "pack-refs", "--all")
    script = str(repo / "train.py")
    assert provenance.git_info(script)[provenance.GIT_COMMIT] == _git(repo, "rev-parse", "HEAD")
    assert provenance.git_info(script) == _mlflow_view(script)
    _git(repo, "checkout", "-q", "--detach")
    detached = provenance.git_info(script)
    assert provenance.GIT_BRANCH not in detached
    assert detached == _mlflow_view(script)


def test_a_linked_worktree_reads_its_own_head(repo, tmp_path):
    _git(repo, "branch", "side")
    _git(repo, "worktree", "add", "-q", str(tmp_path / "side"), "side")
    (tmp_path / "side" / "more.py").write_text("print(2)\n")
    _git(tmp_path / "side", "add", "more.py")
    _git(tmp_path / "side", "commit", "-q", "-m", "two")
    script = str(tmp_path / "side" / "more.py")
    info = provenance.git_info(script)
    assert info[provenance.GIT_BRANCH] == "side"
    assert info[provenance.GIT_COMMIT] == _git(tmp_path / "side", "rev-parse", "HEAD")
    assert info[provenance.GIT_COMMIT] != _git(repo, "rev-parse", "HEAD")
    assert info == _mlflow_view(script)


def test_outside_a_repository_there_is_no_git_tag(tmp_path):
    (tmp_path / "lone.py").write_text("print(3)\n")
    assert provenance.git_info(str(tmp_path / "lone.py")) == {}
    assert provenance.git_info("-c") == {}


def test_the_script_tags_follow_mlflows_default_context(monkeypatch, repo):
    """Source name and type as MLflow's default context gives them; the user is the login name,
    and left to the writer (which has the script's environment) when it is the tracking username:
    a credential is never written to a job."""
    monkeypatch.setattr(sys, "argv", [str(repo / "train.py"), "--flag"])
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.setenv("HOME", str(repo))  # no ~/.mlflow/credentials
    import getpass

    tags = provenance.tags()
    assert tags[provenance.SOURCE_NAME] == str(repo / "train.py")
    assert tags[provenance.SOURCE_TYPE] == "LOCAL" and tags[provenance.USER] == getpass.getuser()
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setattr(sys, "argv", [str(repo / "train.py")])
    assert provenance.USER not in provenance.tags()
    assert tags[provenance.GIT_COMMIT] == _git(repo, "rev-parse", "HEAD")
    monkeypatch.setattr(sys, "argv", [""])
    assert provenance.tags()[provenance.SOURCE_NAME] == "<console>"
