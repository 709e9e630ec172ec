"""Processes that draw each job's plots and package its models as soon as the job arrives, while
the writer writes the jobs before it (forked from the writer at its start, Linux only; elsewhere
the writer does it). The plotting and modelling libraries (matplotlib, plotly, py-tidymodels and
what its fits need) are imported there only: the writer itself holds MLflow alone."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Union

from tidymlflow._jobs.records import TABLES, WHOLE, Manifest, ModelRecord, OutputsRecord, PlotRecord
from tidymlflow._writer.artifacts import (
    Prepared,
    RunFiles,
    derive_outputs,
    draw_plot,
    prepare_files,
    prepare_model,
)

#: What a helper process does for one run: work out its fit's tables (and draw what follows from
#: them), draw one of its plots, package its model, or make what its staged files give (CSV
#: twins, dataset inputs).
Task = Union[OutputsRecord, PlotRecord, ModelRecord, RunFiles]  # noqa: UP007

#: The key of a run's model among its plots' names.
MODEL = ":model"
#: The key of a run's fit outputs among its plots' names.
OUTPUTS = ":outputs"
#: The key of a run's CSV twins and dataset inputs among its plots' names.
FILES = ":files"

#: Jobs waiting in the pool from which on the writer counts as behind (a loop): the helpers then
#: make the dataset inputs too.
BEHIND = 2

#: Plotting processes: two where there are two cores, so that a fit's plots draw side by side
#: (at a script's end nothing else runs).
PLOT_PROCESSES = 2 if (os.cpu_count() or 1) >= 2 else 1


class PlotPool:
    """Processes that draw each job's plots as soon as the job arrives, while the writer writes
    the jobs before it: the plots are then mostly ready when their job's turn comes. A fit is
    packaged as an MLflow model there too (:func:`~tidymlflow._writer.artifacts.prepare_model`).
    A plot or model whose process failed is done in the writer instead.

    Plots wait in a queue of the writer's own and go to a process only when it is free, so a
    plot that a job arriving later draws again (an ``evaluate()`` redrawing its fit's forecast)
    is dropped before it is drawn. The first process gets ready at once and always draws. The
    others (``PLOT_PROCESSES``) get ready when the writer is first idle (never while it starts
    beside a script) and draw only while no script is computing: while every connected script
    waits for the writer (``flush()``, its exit) or none is connected.

    While the writer waits for its next script the processes leave (:meth:`retire`: the writer
    then holds about half the memory) and come back when a script says hello (:meth:`revive`);
    meanwhile the writer draws."""

    def __init__(self, pools: list[Any], listener: int) -> None:
        self.listener = listener
        self.generation = 0  # a new one with every set of processes
        self._use(pools)
        self.spare = False  # may the other processes draw now?
        self.pending: deque[tuple[str, Any, str, str, Task]] = deque()  # handle, ours, job, files, task
        self.futures: dict[tuple[str, str, str], Any] = {}
        self.skips: dict[tuple[str, str], set[str]] = {}  # (job, files) -> plots its outputs leave out
        self.joined: dict[tuple[str, str], OutputsRecord] = {}  # (job, files) -> a fit's part it works out
        self.lock = threading.RLock()

    def _use(self, pools: list[Any]) -> None:
        self.pools = pools
        self.ready: list[Any] = [None] * len(pools)  # a future: the process's warm-up
        self.busy = [False] * len(pools)
        self.broken = [False] * len(pools)
        self.generation += 1
        if pools:
            self.ready[0] = pools[0].submit(warm_plots)

    @classmethod
    def start(cls, listener: int, processes: bool = True) -> PlotPool | None:
        """Fork the plotting processes (Linux; elsewhere the writer draws), or with ``processes``
        false none yet (they come with the next script's hello). They let go of the writer's
        listening socket at once: scripts must find it refused when the writer dies."""
        if not sys.platform.startswith("linux") or os.environ.get("TIDYMLFLOW_PLOT_PROCESS") == "0":
            return None
        pools = _fork(listener) if processes else []
        return None if pools is None else cls(pools, listener)

    def retire(self) -> None:
        """The writer waits for its next script: the processes leave (the writer draws meanwhile)."""
        with self.lock:
            pools, futures = self.pools, list(self.futures.values())
            self._use([])
            for _, ours, *_ in self.pending:
                ours.cancel()
            self.pending.clear()
        for future in futures:
            future.cancel()
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)

    def revive(self) -> None:
        """A script has come: the processes come back if they had left. Forked from the writer's
        main thread while it handles nothing else (its other threads wait on their sockets)."""
        with self.lock:
            if self.pools:
                return
        pools = _fork(self.listener)
        if pools is not None:
            with self.lock:
                self._use(pools)

    def warm_all(self) -> None:
        """The writer is idle: get the other plotting processes ready."""
        for i, pool in enumerate(self.pools):
            if self.ready[i] is None and not self.broken[i]:
                self.ready[i] = pool.submit(warm_plots, True)
                self.ready[i].add_done_callback(lambda _: self._pump())

    def set_spare(self, spare: bool) -> None:
        """Whether no script is computing now (the other processes may draw)."""
        with self.lock:
            self.spare = spare
        self._pump()

    def submit(self, job: str, manifest: Manifest) -> None:
        """Queue a job's plots and models; drop the queued plots it draws again, and leave to
        its evaluations the outputs of their fits not worked out yet."""
        from concurrent.futures import Future

        redrawn = manifest.redraws()
        evaluated = {r.handle: (job, r.files) for r in manifest.runs
                     if r.outputs is not None and r.outputs.kind == "evaluate"}
        with self.lock:
            # dataset inputs need MLflow, which a helper imports on its first (a second of CPU):
            # worth it in a loop, not beside a script's first calls, where the writer has MLflow
            behind = len({key[0] for key in self.futures}) >= BEHIND
            for handle, queued, job_queued, files, task in self.pending:
                if isinstance(task, PlotRecord) and (handle, task.name) in redrawn:
                    queued.cancel()
                elif isinstance(task, OutputsRecord):
                    self._leave_out(handle, (job_queued, files), task, redrawn, evaluated.get(handle))
            for rec in manifest.runs:
                tasks: list[Task] = [*([rec.outputs] if rec.outputs is not None else []), *rec.plots,
                                     *([rec.model] if rec.model is not None else []),
                                     *([RunFiles(rec.tables, rec.datasets if behind else (),
                                                 manifest.provenance or None)]
                                       if rec.tables or rec.datasets else [])]
                for task in tasks:
                    ours: Future[Any] = Future()
                    self.futures[(job, rec.files, _name(task))] = ours
                    self.pending.append((rec.handle, ours, job, rec.files, task))
        self._pump()

    def _leave_out(self, handle: str, where: tuple[str, str], task: OutputsRecord,
                   redrawn: set[tuple[str, str]], evaluation: tuple[str, str] | None) -> None:
        """Outputs not worked out yet leave out what a job that came after writes again; a fit's
        are left whole to its evaluation (:data:`WHOLE`: one extraction for both)."""
        left_out = self.skips.setdefault(where, set())
        if task.kind == "fit" and evaluation is not None and WHOLE not in left_out:
            left_out.add(WHOLE)
            self.joined[evaluation] = task
        left_out.update(name for name in (*task.plots, TABLES) if (handle, name) in redrawn)

    def _free(self) -> int | None:
        for i in range(len(self.pools)):
            if self.busy[i] or self.broken[i]:
                continue
            if i == 0 or (self.spare and self.ready[i] is not None and self.ready[i].done()):
                return i
        return None

    def _pump(self) -> None:
        """Hand queued tasks to free processes (a task a process cannot take is done by the
        writer: its future fails)."""
        with self.lock:
            while self.pending:
                if all(self.broken):
                    self.pending.popleft()[1].cancel()
                    continue
                i = self._free()
                if i is None:
                    return
                _, ours, job, files, task = self.pending.popleft()
                if not ours.set_running_or_notify_cancel():
                    continue
                try:
                    inner = self._submit(i, job, files, task)
                except Exception as exc:
                    self.broken[i] = True
                    ours.set_exception(exc)
                    continue
                self.busy[i] = True
                inner.add_done_callback(
                    lambda done, i=i, ours=ours, g=self.generation: self._done(i, g, ours, done))

    def _submit(self, i: int, job: str, files: str, task: Task) -> Any:
        if isinstance(task, PlotRecord):
            return self.pools[i].submit(draw_plot, job, files, task)
        if isinstance(task, ModelRecord):
            return self.pools[i].submit(prepare_model, job, files, task, tuple(sys.path))
        if isinstance(task, RunFiles):
            return self.pools[i].submit(prepare_files, job, files, task)
        skip = frozenset(self.skips.pop((job, files), ()))
        joined = self.joined.get((job, files))  # kept until the job is done: also for the writer's own try
        return self.pools[i].submit(derive_outputs, job, files, task, skip, tuple(sys.path), joined)

    def _done(self, i: int, generation: int, ours: Any, inner: Any) -> None:
        from concurrent.futures import BrokenExecutor, InvalidStateError

        try:
            ours.set_result(inner.result())
        except InvalidStateError:  # cancelled meanwhile (the processes left)
            pass
        except BaseException as exc:
            with contextlib.suppress(InvalidStateError):
                ours.set_exception(exc)
            if generation == self.generation:
                self.broken[i] = self.broken[i] or isinstance(exc, BrokenExecutor)
        with self.lock:
            if generation == self.generation:
                self.busy[i] = False
        self._pump()

    def draw(self, job: str, files: str, plot: PlotRecord) -> str | None:
        """The outcome of a plot handed over (waiting for it), else drawn here."""
        return self._outcome(job, files, plot, lambda: draw_plot(job, files, plot))

    def model(self, job: str, files: str, model: ModelRecord) -> str | None:
        """The outcome of a model handed over to be packaged (waiting for it), else packaged here."""
        return self._outcome(job, files, model, lambda: prepare_model(job, files, model))

    def files(self, job: str, files: str, run: RunFiles) -> Prepared:
        """The CSV twins and dataset inputs of a run made by a helper (waiting for them), else
        made here; the dataset inputs are made here too when the helper was not given them."""
        errors, inputs = self._outcome(job, files, run, lambda: prepare_files(job, files, run))
        if isinstance(inputs, list) and len(inputs) < len(run.datasets):
            more, inputs = prepare_files(job, files, RunFiles((), run.datasets, run.source))
            errors = [*errors, *more]
        return errors, inputs

    def outputs(self, job: str, files: str, outputs: OutputsRecord) -> str | None:
        """The outcome of a fit's outputs handed over to be worked out (waiting for it), else
        worked out here."""
        joined = self.joined.get((job, files))
        return self._outcome(job, files, outputs, lambda: derive_outputs(job, files, outputs, joined=joined))

    def _outcome(self, job: str, files: str, task: Task, here: Callable[[], Any]) -> Any:
        from concurrent.futures import BrokenExecutor, CancelledError

        with self.lock:
            future = self.futures.pop((job, files, _name(task)), None)
        if future is not None:
            try:
                return future.result(timeout=300)
            except (BrokenExecutor, CancelledError, TimeoutError):
                pass
        return here()

    def forget(self, job: str) -> None:
        """A job is done: drop what is left of its plots."""
        with self.lock:
            for key in [k for k in self.futures if k[0] == job]:
                self.futures.pop(key).cancel()
            for skipped in [k for k in self.skips if k[0] == job]:
                del self.skips[skipped]
            for kept in [k for k in self.joined if k[0] == job]:
                del self.joined[kept]

    def close(self) -> None:
        with self.lock:
            for _, ours, *_ in self.pending:
                ours.cancel()
            self.pending.clear()
        for pool in self.pools:
            pool.shutdown(wait=False, cancel_futures=True)


def _name(task: Task) -> str:
    if isinstance(task, PlotRecord):
        return task.name
    return MODEL if isinstance(task, ModelRecord) else FILES if isinstance(task, RunFiles) else OUTPUTS


def _fork(listener: int) -> list[Any] | None:
    """``PLOT_PROCESSES`` plotting processes, forked one after the other (each when the one before
    has started and gone quiet: the only threads then are that pool's own, waiting on its own
    pipes, with no lock a new process would need); None when they cannot be started."""
    try:
        pools = [helper_process(listener, NICE) for _ in range(PLOT_PROCESSES)]
        for pool in pools:
            pool.submit(int).result(timeout=60)  # the process exists now
    except Exception:
        return None
    return pools


_preloading: threading.Thread | None = None


def preload(modules: tuple[str, ...]) -> None:
    """Import ``modules`` in a thread of the writer, at once: MLflow takes about a second to
    import, which the writer then spends while the script that started it is still starting,
    not after its first job has come. Processes are forked, and the writer's thread imports,
    only once it is done (:func:`settled`: a process forked in the middle of an import would
    inherit the import's lock, held)."""
    import importlib

    def run() -> None:
        for name in modules:
            with contextlib.suppress(Exception):
                importlib.import_module(name)

    global _preloading
    _preloading = threading.Thread(target=run, name="tidymlflow-preload", daemon=True)
    _preloading.start()


def settled() -> None:
    """Wait until :func:`preload` is done: before a fork, and before the writer's own thread
    imports any of it (two threads importing one package at once can each find the other's
    modules half done)."""
    if _preloading is not None:
        _preloading.join()


#: The plotting processes' niceness: they yield the CPU to the user's script and to the writer
#: when both cores are busy (a script starting beside a new writer: its plots are ready well
#: before the writer has MLflow and its store; a loop, whose script then keeps its pace).
NICE = 5


def helper_process(listener: int, nice: int = 0) -> Any:
    """A one-process pool forked from the writer (its imports are the writer's): it lets go of
    the writer's listening socket ``listener`` and leaves when the writer is gone (``nice``: and
    runs that much nicer). The plotting processes and the delivery lanes are such processes."""
    import concurrent.futures
    import multiprocessing

    settled()
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("fork"), initializer=_plot_process,
        initargs=(listener, nice))


def _plot_process(listener: int, nice: int = 0) -> None:
    """A plotting process starts: without the writer's socket, and gone within a second when
    the writer is gone (killed, say)."""
    if nice:
        with contextlib.suppress(OSError):
            os.nice(nice)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, listener):
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)
    writer = os.getppid()

    def orphaned() -> None:
        while os.getppid() == writer:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=orphaned, name="tidymlflow-plots-watch", daemon=True).start()


def warm_plots(draw: bool = False) -> None:
    """A process gets ready to draw: it imports what drawing needs and, with ``draw``, draws a
    small figure of each kind once (fonts, templates and encoders load on the first drawing).
    Not while a writer starts beside a script: there it would slow the script down."""
    import io

    with contextlib.suppress(Exception):
        import plotly.graph_objects as go
        import pyarrow.parquet  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        if not draw:
            freeze_heap()
            return
        # pandas and the gallery too (0.4 s on a process's first plot); not at a writer's start,
        # where they would compete with the script starting beside it (+0.16 s measured)
        from tidymlflow.plots import interactive, static  # noqa: F401
        figure = Figure(figsize=(2, 1.5), dpi=50)
        FigureCanvasAgg(figure)
        axes = figure.subplots()
        axes.plot([0, 1], [1, 0])
        axes.set_title("warm-up")
        figure.savefig(io.BytesIO(), format="png")
        go.Figure(go.Scatter(x=[0, 1], y=[1, 0])).to_html(include_plotlyjs="cdn")
        freeze_heap()


def freeze_heap() -> None:
    """Leave what this process has loaded (MLflow, matplotlib, plotly, pandas: some 200,000
    objects) out of the garbage collector's full passes from now on. Such a pass otherwise
    comes every few plots or jobs and costs 0.15 s each in a plotting process (0.04 s after
    this). These objects live as long as the process; a process of tidymlflow's own only, never
    the user's. Once per process: its first warm-up is when the libraries are in."""
    import gc

    if gc.get_freeze_count() == 0:
        gc.freeze()
