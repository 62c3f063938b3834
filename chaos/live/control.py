"""The control server of a live run with ``--web``: a small JSON API on 127.0.0.1, in the
faultmesh process, that the faultmesh tab of Locust's web UI (``loadtests.webtab``) reads
and drives (docs/live.md, The faultmesh tab).

* ``GET /state`` — the graph, each service's live state, the fault timeline, the SLOs so far
  and whether the load ended (:class:`chaos.live.livestate.LiveState`);
* ``POST /faults`` — a fault as JSON, the fields of a scenario's fault in YAML (``type``,
  ``target``, ``duration``, ``latency``, ``rate``, ...), validated exactly as the topology
  loader validates a scenario's faults (and refused as the live engine refuses a scenario's
  fault), applied now (``start`` is the moment it is fired) and kept in the run's faults, so
  it lands in faults.csv as the scheduled ones do, its parameters marked ``"by": "hand"``;
* ``DELETE /faults/<index>`` — removes a fault in force now (by its index in the timeline).

A bad fault is answered 400 with the reason; a fault that cannot act now (before the load's
first request, after its end, a ``kill``, which its replicas' restart undoes) 409.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from topologies.errors import RunError, TopologyError, UsageError
from topologies.model import Fault, Topology

from . import faults
from .faults import Applied
from .livestate import LiveState

if TYPE_CHECKING:
    from .run import LiveRun

__all__ = ["ControlServer", "HandFired", "parse_fault", "Conflict"]

#: The scenario name a fault typed by hand is validated under.
_SCENARIO = "by_hand"


class Conflict(Exception):
    """A well-formed request the run cannot do now (answered 409)."""


@dataclass
class HandFired(Applied):
    """A fault fired from the web tab rather than scheduled by the scenario (faults.csv
    gives it ``"by": "hand"`` among its parameters)."""

    by: str = "hand"


def parse_fault(topology: Topology, raw: Any) -> Fault:
    """The fault ``raw`` (a JSON object) describes, validated as the loader validates a
    scenario's fault: it is put in a scenario of ``topology`` and the whole file checked
    again (fields, units, the target service or edge, replica counts). UsageError names the
    offending field."""
    from topologies.loader import from_dict, to_dict

    if not isinstance(raw, dict):
        raise UsageError("a fault is a JSON object such as "
                         '{"type": "latency", "target": "db", "latency": "200ms"}')
    if "start" in raw:
        raise UsageError("start: a fault fired by hand starts when it is fired; leave start out")
    data = to_dict(topology)
    data["scenarios"] = {_SCENARIO: {"faults": [raw]}}
    try:
        checked = from_dict(data, file="<fault>")
    except TopologyError as exc:
        prefix = f"scenarios.{_SCENARIO}.faults[0]"
        raise UsageError("; ".join(
            (p.path.replace(prefix, "fault", 1) or "fault") + ": " + p.message
            for p in exc.problems)) from None
    return checked.scenarios[_SCENARIO].faults[0]


class ControlServer:
    """The control API of ``run`` on 127.0.0.1 (a free port), in a daemon thread."""

    def __init__(self, run: LiveRun) -> None:
        self.run = run
        self.live = LiveState(run)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._timers: list[threading.Timer] = []

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> str:
        """Serve; the base URL."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="faultmesh-control", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving and drop the pending ends of hand-fired faults (the run's teardown
        removes what is still in force)."""
        for timer in self._timers:
            timer.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5.0)

    # --- the actions ---------------------------------------------------------------------
    def fire(self, raw: Any) -> dict[str, Any]:
        """Validate and apply the fault ``raw`` now; its timeline entry."""
        run = self.run
        fault = parse_fault(run.topology, raw)
        if fault.type == "rollout":
            raise UsageError("type: a rollout cannot be fired by hand (its service needs its "
                             "relay from the start): put it in the scenario")
        run.runtime.check(run.topology, (fault,), run.toxiproxy_url)
        with run._lock:
            now = self.live.now()
            # the scenario's faults are in run.applied first: their tags keep their numbers
            if now is None or len(run.applied) < len(run.scenario.faults):
                raise Conflict("the load has not started yet: fire faults once it runs")
            if run._stop.is_set() or run._closing:
                raise Conflict("the load has ended: no fault can act any more")
            a = HandFired(dataclasses.replace(fault, start=round(now, 3)))
            run.applied.append(a)
            index = len(run.applied) - 1
            a.start = time.time()
            try:
                faults.apply(run, a, f"f{index}_{fault.type}")
            except Exception as exc:  # noqa: BLE001 - answered; the run goes on
                faults.remove(run, a)  # whatever it did before it failed
                run.applied.pop()
                if isinstance(exc, UsageError):
                    raise
                raise RunError(f"fault {fault.type} on {fault.target}: {exc}") from None
        run.notes.append(f"fault {fault.type} on {fault.target} fired by hand from the web UI "
                         f"at {now:.1f} s")
        if fault.duration is not None and fault.type != "kill":
            timer = threading.Timer(fault.duration, self._end, args=(a,))
            timer.daemon = True
            self._timers.append(timer)
            timer.start()
        return self.live.timeline()[index]

    def clear(self, index: int) -> dict[str, Any]:
        """Remove the fault at ``index`` of the timeline, which must be in force."""
        run = self.run
        if not 0 <= index < len(run.applied):
            raise Conflict(f"no fault {index}: the run has {len(run.applied)}")
        a = run.applied[index]
        if a.fault.type == "kill":
            raise Conflict("a kill cannot be cleared: its replicas restart by themselves")
        if a.start is None or a.end is not None:
            raise Conflict(f"fault {index} ({a.fault.type} on {a.fault.target}) is not in force")
        self._end(a)
        now = self.live.now() or 0.0
        run.notes.append(f"fault {a.fault.type} on {a.fault.target} cleared by hand from the "
                         f"web UI at {now:.1f} s")
        return self.live.timeline()[index]

    def _end(self, a: Applied) -> None:
        run = self.run
        with run._lock:
            if a.start is None or a.end is not None or run._closing:
                return
            try:
                faults.remove(run, a)
            finally:
                a.end = time.time()


def _handler(control: ControlServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """The control API's requests (JSON in, JSON out)."""

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # the run's console is for the run

        def _send(self, code: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _guard(self, action: Any) -> None:
            try:
                self._send(200, action())
            except UsageError as exc:
                self._send(400, {"error": str(exc)})
            except Conflict as exc:
                self._send(409, {"error": str(exc)})
            except RunError as exc:
                self._send(500, {"error": str(exc)})

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path.split("?", 1)[0] == "/state":
                self._guard(control.live.snapshot)
            else:
                self._send(404, {"error": f"no such path: {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/faults":
                self._send(404, {"error": f"no such path: {self.path}"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            try:
                raw = json.loads(self.rfile.read(length) or b"null")
            except ValueError as exc:
                self._send(400, {"error": f"not JSON: {exc}"})
                return
            self._guard(lambda: control.fire(raw))

        def do_DELETE(self) -> None:  # noqa: N802
            head, _, tail = self.path.rpartition("/")
            if head != "/faults" or not tail.isdigit():
                self._send(404, {"error": f"no such path: {self.path}"})
                return
            self._guard(lambda: control.clear(int(tail)))

    return Handler
