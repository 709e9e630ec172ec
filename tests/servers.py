"""Real servers for the tests: a free port on 127.0.0.1, a command started in its own process
group and waited for on its health endpoint, an ``mlflow server``, and a stop that ends every
process the server started."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT_S = 90


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError as exc:
        return f"(no log: {exc})"


@contextlib.contextmanager
def started(cmd: list[str], health_url: str, log_path: Path, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> Iterator[subprocess.Popen]:
    """Run ``cmd`` in its own process group until ``health_url`` answers 200; stop the group."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                try:
                    with urllib.request.urlopen(health_url, timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    state = "exited" if proc.poll() is not None else f"not healthy after {START_TIMEOUT_S}s"
                    pytest.fail(f"{' '.join(cmd[:5])} {state}:\n{tail(log_path)}", pytrace=False)
                time.sleep(0.5)
            yield proc
        finally:
            stop_group(proc)


@contextlib.contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, log_path: Path,
                  port: int | None = None) -> Iterator[str]:
    """``mlflow server`` with proxied artifacts on ``port`` (default: a free one); yields its URL
    once it answers."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
           "--artifacts-destination", str(artifacts), "--serve-artifacts",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    # the server's job runner (GenAI judges and trace jobs, seven processes) is not needed for
    # tracking and doubles the start time on a small machine
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with started(cmd, f"{url}/health", log_path, env):
        # the server opens its store lazily: the first real request can take seconds, so make it
        # here, not inside a test that runs with the suite's short HTTP timeout
        search = urllib.request.Request(f"{url}/api/2.0/mlflow/experiments/search",
                                        data=b'{"max_results": 1}',
                                        headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(search, timeout=START_TIMEOUT_S) as response:
                response.read()
        except OSError as exc:
            pytest.fail(f"mlflow server answers /health but not a search ({exc}):\n{tail(log_path)}",
                        pytrace=False)
        yield url


@contextlib.contextmanager
def hung_server(port: int) -> Iterator[None]:
    """A socket on ``port`` that accepts connections and never answers (a hung server)."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def stop_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Stop the process and every process it started (its own process group), waiting for all."""
    def alive() -> bool:
        proc.poll()
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return False
        return True

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    if alive():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


@contextlib.contextmanager
def late_answers(target: str, path_suffix: str, delay: float, times: int = 1,
                 record: list[tuple[str, str, bytes]] | None = None) -> Iterator[str]:
    """A proxy in front of the server ``target`` that forwards every request, but answers the
    first ``times`` requests whose path ends with ``path_suffix`` only ``delay`` seconds after
    the server did (the server has acted; the client's read times out and it may send the request
    again). ``record`` gets (path, Authorization header, body) of every request. Yields the
    proxy's URL."""
    import http.server

    late = {"left": times}
    lock = threading.Lock()

    class Forward(http.server.BaseHTTPRequestHandler):
        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if record is not None:
                with lock:
                    record.append((self.path, self.headers.get("Authorization") or "", body))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            request = urllib.request.Request(target + self.path, data=body or None, headers=headers,
                                             method=self.command)
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    status, answer = response.status, response.read()
                    kind = response.headers.get("Content-Type")
            except urllib.error.HTTPError as exc:
                status, answer, kind = exc.code, exc.read(), exc.headers.get("Content-Type")
            with lock:
                hold = self.path.split("?")[0].endswith(path_suffix) and late["left"] > 0
                late["left"] -= hold
            if hold:
                time.sleep(delay)
            with contextlib.suppress(OSError):
                self.send_response(status)
                self.send_header("Content-Type", kind or "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
