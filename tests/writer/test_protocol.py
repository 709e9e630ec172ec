"""The writer's trust boundary, for real: a connection to a live writer's socket sends what a
broken or hostile script could (not JSON, wrong types, a huge line, a job folder outside the
journal, a manifest naming /etc/passwd). Each is refused with an answer; the writer neither
crashes, nor grows, nor uploads a file it was pointed at, nor stays past its idle time, and it
goes on writing the user's runs."""

from __future__ import annotations

import json
import os
import shutil
import socket

import pytest

import tidymlflow
from tidymlflow._jobs import journal, records
from tidymlflow._jobs.records import Done, Refused, Submit, Welcome
from tidymlflow._writer import client as writer_client
from tidymlflow._writer import rendezvous

pytestmark = pytest.mark.writer_process

HOSTILE = [b"[1,2]\n", b'{"op":"job","seq":"x","path":"/j","call":"c"}\n',
           b'{"op":"hello","path":5,"warm":null,"absent":false}\n', b"{not json\n"]


def _fit(split):
    from py_parsnip import linear_reg
    from py_workflows import workflow

    train, test = split
    return workflow().add_formula("y ~ x1 + x2").add_model(linear_reg()).fit(train).evaluate(test)


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        return int(next(line for line in fh if line.startswith("VmRSS")).split()[1])


def _address() -> str:
    """The socket of the writer of this process's setting (computed as the script computes it)."""
    return os.path.join(rendezvous.folder(), rendezvous.key() + ".sock")


def _connect(address: str) -> tuple[socket.socket, object]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(address)
    sock.settimeout(60)
    stream = sock.makefile("rb")
    assert isinstance(records.decode(stream.readline(), (Welcome,)), Welcome)
    return sock, stream


def _planted_job(split, store, tmp_path) -> str:
    """A job in the user's journal whose manifest names /etc/passwd as a table."""
    from tidymlflow.testing import capture

    with capture() as jobs:
        _fit(split)
        source = jobs.jobs[0][0]
        planted = journal.new_job(os.path.dirname(source))
        shutil.copytree(source, planted, dirs_exist_ok=True)
    path = os.path.join(planted, journal.MANIFEST)
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    data["runs"][0]["tables"].append("../../../../../../../etc/passwd")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
    return planted


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the writer's memory in /proc")
def test_hostile_messages_are_refused_and_the_writer_serves_on(store, split, tmp_path, monkeypatch, request):
    monkeypatch.setenv("TIDYMLFLOW_WRITER", "process")
    tidymlflow.autolog()
    writer = writer_client.current()
    assert isinstance(writer, writer_client.Process)
    address = writer.sock.getpeername()  # the writer this process uses (maybe started earlier)
    pid = writer.writer_pid()
    _fit(split)
    tidymlflow.flush()  # the writer has loaded what it loads: its memory is settled
    sock, stream = _connect(address)
    for line in HOSTILE:
        sock.sendall(line)
        answer = records.decode(stream.readline(), (Refused,))
        assert isinstance(answer, Refused) and answer.error
    before = _rss_kb(pid)
    sock.sendall(b"x" * (64 << 20) + b"\n")  # 64 MiB in one line
    assert "at most" in records.decode(stream.readline(), (Refused,)).error
    assert _rss_kb(pid) - before < 32 << 10  # read in pieces and dropped, never held
    outside = tmp_path / "evil" / "a" / "b"
    outside.mkdir(parents=True)
    (outside / journal.MANIFEST).write_text("{}")
    planted = _planted_job(split, store, tmp_path)
    request.addfinalizer(lambda: shutil.rmtree(planted, ignore_errors=True))  # sync would refuse it too
    for seq, path, why in ((1, str(outside), "not a job folder"), (2, planted, "not a file inside the job")):
        sock.sendall(records.encode(Submit(seq, path, "Workflow.fit")))
        done = records.decode(stream.readline(), (Done,))
        assert done.seq == seq and done.runs == {} and len(done.errors) == 1 and why in done.errors[0]
    assert os.path.isdir(outside) and os.path.isdir(planted)  # nothing it was pointed at is deleted
    stream.close()
    sock.close()
    os.kill(pid, 0)  # alive
    fitted = _fit(split)
    run = store.client.get_run(tidymlflow.run_id(fitted))  # written after all that
    assert run.info.status == "FINISHED" and "test_rmse" in run.data.metrics
    uploaded = [a.path for r in store.client.search_runs([store.experiment_id])
                for a in store.client.list_artifacts(r.info.run_id, "tidymodels")]
    assert uploaded and not any("passwd" in p for p in uploaded)


def test_a_writer_pestered_with_bad_messages_still_leaves_when_idle(monkeypatch, tmp_path):
    """Bad messages end no reader thread: the script that sent them counts as gone when it
    closes its connection, so a writer set to leave after 1 idle second leaves."""
    monkeypatch.setenv("TIDYMLFLOW_WRITER_IDLE", "1")
    monkeypatch.setenv("TIDYMLFLOW_JOURNAL_DIR", str(tmp_path / "journal"))
    address = _address()
    own, proc, _ = rendezvous.connect(writer_client._spawn)
    assert proc is not None  # a new writer of this setting
    try:
        sock, stream = _connect(address)
        for line in HOSTILE:
            sock.sendall(line)
            assert isinstance(records.decode(stream.readline(), (Refused,)), Refused)
        stream.close()  # the socket closes with its last file
        sock.close()
        own.close()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
