"""Where a run comes from, as MLflow's context tags say it: the script (``mlflow.source.name``,
``mlflow.source.type``), the user (``mlflow.user``) and its git commit, branch and remote
(``mlflow.source.git.*``). Computed in the user's process, once per script, and carried by every
job: a writer that serves several scripts never tags one script's run with another's commit.

Cheap, and no MLflow or GitPython import: the same values MLflow's default and git context
providers give, with the git ones read from the repository's files (``HEAD``, its ref or
``packed-refs``, the first remote of ``config``; worktrees and ``gitdir:`` files included)."""

from __future__ import annotations

import configparser
import getpass
import os
import re
import sys

SOURCE_NAME, SOURCE_TYPE, USER = "mlflow.source.name", "mlflow.source.type", "mlflow.user"
GIT_COMMIT, GIT_BRANCH, GIT_REPO_URL = ("mlflow.source.git.commit", "mlflow.source.git.branch",
                                        "mlflow.source.git.repoURL")
_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")

_computed: tuple[tuple[object, ...], dict[str, str]] | None = None


def tags() -> dict[str, str]:
    """This script's provenance tags (computed on first use; again only if the script's name or
    whether a tracking username is set changed)."""
    global _computed
    key = (*sys.argv[:1], bool(os.environ.get("MLFLOW_TRACKING_USERNAME")))
    if _computed is None or _computed[0] != key:
        _computed = (key, _compute())
    return dict(_computed[1])


def _compute() -> dict[str, str]:
    main = sys.argv[0] if sys.argv and sys.argv[0] else None
    found = {SOURCE_NAME: main or "<console>", SOURCE_TYPE: "LOCAL"}
    user = _login()
    if user is not None:
        found[USER] = user
    if main is not None:
        found.update(git_info(main))
    return found


def _login() -> str | None:
    """MLflow's ``mlflow.user`` when it is the login name; None when MLflow would take the
    tracking username (a credential: never written to a job; the writer reads it from the
    script's environment, as MLflow does)."""
    if os.environ.get("MLFLOW_TRACKING_USERNAME"):
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read(os.path.join(os.path.expanduser("~"), ".mlflow", "credentials"))
        if parser.get("mlflow", "mlflow_tracking_username", fallback=None):
            return None
    except (configparser.Error, OSError, UnicodeDecodeError):
        pass
    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry)
        return "unknown"


def git_info(path: str) -> dict[str, str]:
    """Commit, branch and first remote's URL of the repository holding ``path`` (a file: its
    folder), as far as they exist; {} outside a repository or when it cannot be read."""
    try:
        start = os.path.dirname(os.path.abspath(path)) if os.path.isfile(path) else os.path.abspath(path)
        found = _git_dirs(start)
        if found is None:
            return {}
        own, common = found
        head = _read(os.path.join(own, "HEAD"))
        info: dict[str, str] = {}
        if head.startswith("ref:"):
            ref = head[4:].strip()
            commit = _ref(common, ref) or _ref(own, ref)
            if ref.startswith("refs/heads/"):
                info[GIT_BRANCH] = ref[len("refs/heads/"):]
        else:
            commit = head if _SHA.fullmatch(head) else None
        if commit is None:
            return {}
        info[GIT_COMMIT] = commit
        url = _first_remote(common)
        if url:
            info[GIT_REPO_URL] = url
        return info
    except (OSError, UnicodeDecodeError, configparser.Error):
        return {}


def _git_dirs(start: str) -> tuple[str, str] | None:
    """(this checkout's git folder, the repository's common git folder), searching upwards."""
    here = start
    while True:
        dot = os.path.join(here, ".git")
        if os.path.isdir(dot):
            own = dot
            break
        if os.path.isfile(dot):
            text = _read(dot)
            if not text.startswith("gitdir:"):
                return None
            own = os.path.normpath(os.path.join(here, text[len("gitdir:"):].strip()))
            break
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent
    common_file = os.path.join(own, "commondir")
    common = (os.path.normpath(os.path.join(own, _read(common_file))) if os.path.isfile(common_file)
              else own)
    return own, common


def _ref(git_dir: str, ref: str) -> str | None:
    loose = os.path.join(git_dir, *ref.split("/"))
    if os.path.isfile(loose):
        sha = _read(loose)
        return sha if _SHA.fullmatch(sha) else None
    packed = os.path.join(git_dir, "packed-refs")
    if os.path.isfile(packed):
        for line in _read(packed).splitlines():
            sha, _, name = line.partition(" ")
            if name == ref and _SHA.fullmatch(sha):
                return sha
    return None


def _first_remote(git_dir: str) -> str | None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read(os.path.join(git_dir, "config"), encoding="utf-8")
    for section in parser.sections():
        if section.startswith("remote ") and parser.has_option(section, "url"):
            return parser.get(section, "url")
    return None


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read().strip()
