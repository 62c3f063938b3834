"""How far a long command has got, on stderr: the simulated time of ``sim``, the elapsed time,
request rate, errors and active faults of ``live``, the runs done of ``sweep`` and ``gate``.

Where it goes depends on ``FAULTMESH_PROGRESS`` (docs/cli.md):

* ``auto`` (the default): a live display (rich) when stderr is a terminal, plain lines when
  it is not (a CI log, a pipe, a file);
* ``bar``: the live display even when stderr is not a terminal;
* ``lines``: plain lines: one when a task starts, one every ``FAULTMESH_PROGRESS_EVERY``
  seconds of wall time (default 10) while it runs, one when it ends;
* ``off``: nothing.

Progress never goes to stdout, so tables and result lines read the same in every mode.
A :class:`Task` is one piece of work (a simulation, a live run, a sweep); tasks opened while
another is open (a gate's scenarios, each a simulation) share one display.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from topologies.errors import UsageError

__all__ = ["MODES", "ENV", "ENV_EVERY", "DEFAULT_EVERY", "mode", "period", "Task", "echo",
           "simulation", "LiveView", "clock"]

#: The values ``FAULTMESH_PROGRESS`` takes.
MODES = ("auto", "bar", "lines", "off")
#: The environment variable that chooses the mode.
ENV = "FAULTMESH_PROGRESS"
#: The environment variable that sets the seconds between two plain lines.
ENV_EVERY = "FAULTMESH_PROGRESS_EVERY"
#: Seconds between two plain lines unless ``FAULTMESH_PROGRESS_EVERY`` says otherwise.
DEFAULT_EVERY = 10.0

_write_lock = threading.RLock()  # one line (or one display change) at a time
_display: _Display | None = None  # the live display the open bar tasks share


def mode() -> str:
    """The mode in force: ``bar``, ``lines`` or ``off`` (``auto`` resolved against stderr)."""
    value = (os.environ.get(ENV) or "auto").strip().lower()
    if value not in MODES:
        raise UsageError(f"{ENV}={os.environ.get(ENV)!r}: expected one of "
                         f"{', '.join(MODES)}")
    if value == "auto":
        try:
            return "bar" if sys.stderr.isatty() else "lines"
        except (AttributeError, ValueError):  # no stderr, or a closed one
            return "lines"
    return value


def period() -> float:
    """Seconds of wall time between two plain progress lines."""
    text = os.environ.get(ENV_EVERY)
    if not text:
        return DEFAULT_EVERY
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise UsageError(f"{ENV_EVERY}={text!r}: expected a positive number of seconds")
    return value


def clock(seconds: float) -> str:
    """``75`` -> ``1m15s``, ``2.34`` -> ``2.3s``: a wall-clock span as people read it."""
    if seconds < 10:
        return f"{max(0.0, seconds):.1f}s"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _write(line: str) -> None:
    # sys.stderr looked up now: tests and callers may have replaced it
    with _write_lock:
        stream = sys.stderr
        stream.write(line + "\n")
        stream.flush()


def echo(message: str) -> None:
    """Print ``message`` on stderr without tearing a live display (it goes above it)."""
    with _write_lock:
        if _display is not None:
            _display.progress.console.print(message, markup=False, highlight=False,
                                            soft_wrap=True)
        else:
            _write(message)


class _Display:
    """The one rich live display the open bar tasks share; it ends with the last of them
    and leaves nothing behind (the command's own output follows)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True, force_terminal=True)
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(bar_width=24),
            TextColumn("{task.fields[text]}"), TimeElapsedColumn(),
            console=console, transient=True, refresh_per_second=4,
            # stdout stays the command's own: no capture into the display's console
            redirect_stdout=False, redirect_stderr=False)
        self.users = 0

    @classmethod
    def acquire(cls) -> _Display:
        global _display
        with _write_lock:
            if _display is None:
                _display = cls()
                _display.progress.start()
            _display.users += 1
            return _display

    def release(self) -> None:
        global _display
        with _write_lock:
            self.users -= 1
            if self.users <= 0:
                self.progress.stop()
                _display = None


class Task:
    """One piece of work that says how far it has got: a label (``sim rag-chat/baseline``),
    a total when one is known, and a line of text the caller keeps up to date.

    Use it as a context manager, or call :meth:`close`. Its methods may be called from any
    thread. ``announce=False``: no plain line until the first :meth:`phase` or period, and
    none at the end if none came before (a run refused at once says only why).
    """

    def __init__(self, label: str, total: float | None = None, text: str = "started", *,
                 announce: bool = True) -> None:
        self.label = label
        self.total = total
        self.text = text
        self.mode = mode()
        self.every = period() if self.mode == "lines" else DEFAULT_EVERY
        self.started = time.monotonic()
        self._closed = threading.Event()
        self._display: _Display | None = None
        self._task_id: Any = None
        self._beat: threading.Thread | None = None
        self._printed = False
        self._last = self.started  # when the last plain line was printed
        if self.mode == "lines":
            if announce:
                self._line(text)
            self._beat = threading.Thread(target=self._heartbeat, daemon=True,
                                          name="faultmesh-progress")
            self._beat.start()
        elif self.mode == "bar":
            self._display = _Display.acquire()
            with _write_lock:
                self._task_id = self._display.progress.add_task(label, total=total, text=text)

    def _line(self, text: str) -> None:
        self._printed = True
        self._last = time.monotonic()
        _write(f"{self.label}: {text} [{clock(time.monotonic() - self.started)}]")

    def _heartbeat(self) -> None:
        """Plain-lines mode: the latest text once a period, whether or not it changed, so
        a log shows the run is alive."""
        while not self._closed.wait(max(0.0, self._last + self.every - time.monotonic())):
            if time.monotonic() - self._last >= self.every - 1e-3:  # no phase line meanwhile
                self._line(self.text)

    def update(self, done: float | None = None, text: str | None = None,
               total: float | None = None) -> None:
        """How far the work has got: ``done`` out of ``total``, described by ``text``."""
        if self._closed.is_set():
            return
        if text is not None:
            self.text = text
        if total is not None:
            self.total = total
        if self._display is not None:
            with _write_lock:
                fields: dict[str, Any] = {"text": self.text}
                if total is not None:
                    fields["total"] = total
                if done is not None:
                    fields["completed"] = done
                self._display.progress.update(self._task_id, **fields)

    def phase(self, text: str) -> None:
        """A step of the work begins (``starting 9 replicas``): shown at once, also in
        plain-lines mode, where ordinary updates wait for the next period."""
        self.update(text=text)
        if self.mode == "lines" and not self._closed.is_set():
            self._line(text)

    def summary(self) -> str:
        """How far the work got, for the closing line ("" when nothing was reported)."""
        return self.text if self.text not in ("started", "starting") else ""

    def echo(self, message: str) -> None:
        """A message on stderr that does not tear the display (see :func:`echo`)."""
        echo(message)

    def close(self, text: str | None = None) -> None:
        """The work has ended; plain-lines mode prints ``text`` (default: ``done``)."""
        if self._closed.is_set():
            return
        self._closed.set()
        if self._beat is not None:
            self._beat.join()
            if self._printed:
                self._line(text or "done")
        if self._display is not None:
            with _write_lock:
                self._display.progress.remove_task(self._task_id)
                self._display.release()
            self._display = None

    def __enter__(self) -> Task:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.close(f"done, {self.summary()}" if self.summary() else "done")
        elif issubclass(kind, KeyboardInterrupt):
            self.close(f"interrupted at {self.summary() or self.text}")
        else:
            self.close("stopped by an error")


@contextmanager
def simulation(label: str) -> Iterator[Callable[[float, float, int], None]]:
    """A task for one simulation; yields the callback ``simulator.simulate(progress=...)``
    calls with the simulated time, the simulated duration and the requests so far."""
    with Task(label) as task:
        def show(now: float, end: float, requests: int) -> None:
            share = f" ({100 * now / end:.0f}%)" if end > 0 else ""
            task.update(now, f"{now:,.0f}/{end:,.0f} s simulated{share}, "
                        f"{requests:,} requests", total=end)

        yield show


class LiveView(Task):
    """What a live run shows while it runs (``chaos.live.LiveRun(watch=...)``): its phase
    (``starting 9 replicas``), then the load's elapsed and remaining time, request rate,
    requests and errors so far and the faults in force; the web UI's address once it serves
    (printed whatever the mode: it is an answer, not progress)."""

    #: Seconds of load the request rate is measured over.
    RATE_WINDOW = 3.0

    def __init__(self, label: str, duration: float) -> None:
        super().__init__(label, total=duration, text="starting", announce=False)
        self.duration = duration
        self._samples: deque[tuple[float, int]] = deque()
        self._web_shown = False
        self._load_text = ""

    def load(self, counts: dict[str, Any], faults: Sequence[str]) -> None:
        """The load's counts so far (``loadtests.run_load(progress=...)``) and the faults
        in force now."""
        url = counts.get("web_url")
        if url and not self._web_shown:
            self._web_shown = True
            echo(f"faultmesh {self.label}: Locust web UI at {url}")
        if "elapsed" not in counts:
            return
        elapsed, sent = float(counts["elapsed"]), int(counts.get("sent", 0))
        samples = self._samples
        samples.append((elapsed, sent))
        while len(samples) > 2 and elapsed - samples[1][0] >= self.RATE_WINDOW:
            samples.popleft()
        t_then, sent_then = samples[0]
        rate = (f"{(sent - sent_then) / (elapsed - t_then):,.1f}" if elapsed > t_then
                else "-")
        errors = int(counts.get("errors", 0))
        if elapsed < self.duration:
            when = (f"{elapsed:,.0f}/{self.duration:,.0f} s, "
                    f"{self.duration - elapsed:,.0f} s left, {rate} req/s")
        else:
            in_flight = sent - int(counts.get("answered", 0))
            when = f"load ended, draining {in_flight:,} in flight"
        text = (f"{when}, {sent:,} requests, {errors:,} errors, "
                f"faults: {', '.join(faults) if faults else 'none'}")
        self._load_text = text
        self.update(min(elapsed, self.duration), text)

    def summary(self) -> str:
        return self._load_text
