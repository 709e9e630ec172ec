"""Every TIDYMLFLOW_* environment variable is checked at autolog(): a bad value or a misspelt
name is a ValueError naming it, before anything is patched; a value spoilt after autolog() never
turns into a traceback at exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from conftest import STANDIN

import tidymlflow
from tidymlflow._engine import patching as _engine


@pytest.mark.parametrize("name, value", [
    ("TIDYMLFLOW_WRITER", "bogus"),
    ("TIDYMLFLOW_WRITER_IDLE", "inf"),
    ("TIDYMLFLOW_WRITER_IDLE", "-5"),
    ("TIDYMLFLOW_WRITER_IDLE", "ten"),
    ("TIDYMLFLOW_WRITER_REST", "nan"),
    ("TIDYMLFLOW_EXIT_TIMEOUT", "abc"),
    ("TIDYMLFLOW_EXIT_TIMEOUT", "nan"),
    ("TIDYMLFLOW_PLOT_PROCESS", "maybe"),
    ("TIDYMLFLOW_STRICT", "sometimes"),
    ("TIDYMLFLOW_WRITTER", "inline"),  # misspelt
])
def test_a_bad_variable_is_named_at_autolog_before_anything_is_patched(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    before = dict(_engine._installed)
    with pytest.raises(ValueError, match=name):
        tidymlflow.autolog()
    assert _engine._installed == before


def test_a_journal_dir_that_is_a_file_is_named(monkeypatch, tmp_path):
    file = tmp_path / "journal"
    file.write_text("")
    monkeypatch.setenv("TIDYMLFLOW_JOURNAL_DIR", str(file))
    with pytest.raises(ValueError, match="TIDYMLFLOW_JOURNAL_DIR"):
        tidymlflow.autolog()


@pytest.mark.parametrize("name, value", [("TIDYMLFLOW_WRITER", " Inline "), ("TIDYMLFLOW_WRITER_IDLE", "0.5"),
                                         ("TIDYMLFLOW_STRICT", "TRUE"), ("TIDYMLFLOW_SCREENSHOTS", "/tmp/x")])
def test_good_values_and_unrelated_names_pass(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    from tidymlflow._runtime import env as _env

    _env.check_environment()


def test_an_exit_timeout_spoilt_after_autolog_ends_the_script_cleanly(tracking_uri, tmp_path):
    script = textwrap.dedent("""
        import os
        import tidymlflow
        tidymlflow.autolog()
        os.environ["TIDYMLFLOW_EXIT_TIMEOUT"] = "abc"
        print("done")
    """)
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri,
           "PYTHONPATH": os.pathsep.join(p for p in (str(STANDIN), os.environ.get("PYTHONPATH")) if p)}
    env.pop("TIDYMLFLOW_EXIT_TIMEOUT", None)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
