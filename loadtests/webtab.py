"""The faultmesh tab of Locust's web UI during ``faultmesh live TOPOLOGY --web``.

Runs in the load process (``loadtests.worker``), on Locust's own Flask app, so it shares the
UI's address (127.0.0.1 only):

* ``/faultmesh`` — one self-contained page (inline script and style, no external asset):
  the call graph as SVG, each service coloured by its state; the fault timeline with a
  marker for now; a button per scenario fault and a form to fire any fault typed as JSON
  (cleared again with its ✕); the SLOs with their verdict so far; the report's path once the
  run has ended. ``/faultmesh?fire=<json>`` fires that fault as soon as the page has loaded,
  through the same function the buttons call (a deep link).
* ``/faultmesh/api/state``, ``/faultmesh/api/faults`` (POST) and
  ``/faultmesh/api/faults/<index>`` (DELETE) — the live run's control API
  (``chaos.live.control``) relayed, so the page talks to its own origin.
* a ``faultmesh`` tab in Locust's React UI (``template_args["extendedTabs"]``): a table of
  each service's state and the SLOs so far, its first row naming the page, and a link to the
  page fixed in a corner of the UI (an extended tab can only hold a table).
* Locust's own STOP and EDIT (``POST /stop``, ``POST /swarm`` while running) are taken over
  (:class:`WebControls`): STOP ends the run as its duration would (the requests in flight
  drain); EDIT changes a closed workload's users and is refused for an open one.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["WebControls", "install"]

#: Seconds the page's relay waits for the control API.
RELAY_TIMEOUT = 5.0


@dataclass
class WebControls:
    """What STOP and EDIT in Locust's web UI do in a faultmesh load: ``on_stop()`` ends the
    run (its message for the UI); ``on_edit(users)`` answers (done, message)."""

    on_stop: Callable[[], str]
    on_edit: Callable[[int], tuple[bool, str]]


def _page() -> str:
    """The page: ``webtab.html`` beside this module (package data)."""
    with open(os.path.join(os.path.dirname(__file__), "webtab.html"), encoding="utf-8") as fh:
        return fh.read()


def install(web_ui: Any, plan: Any, controls: WebControls) -> None:
    """Add the faultmesh page, its relay, the tab and the STOP/EDIT takeover to Locust's
    ``web_ui`` for the load ``plan`` (its ``control_url`` may be None: no live run, the page
    then says so)."""
    from flask import Response, jsonify, request

    app = web_ui.app
    control = plan.control_url

    def relay(method: str, path: str, body: bytes | None = None) -> Response:
        if not control:
            return Response(json.dumps({"error": "no live run to control (faultmesh load "
                                                 "without faultmesh live)"}),
                            status=404, mimetype="application/json")
        req = urllib.request.Request(control + path, data=body, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=RELAY_TIMEOUT) as resp:
                return Response(resp.read(), status=resp.status, mimetype="application/json")
        except urllib.error.HTTPError as exc:  # 400/409: the control API's reason
            return Response(exc.read(), status=exc.code, mimetype="application/json")
        except OSError as exc:
            return Response(json.dumps({"error": f"the live run does not answer: {exc}"}),
                            status=502, mimetype="application/json")

    @app.route("/faultmesh")
    def faultmesh_page() -> Response:
        return Response(_page(), mimetype="text/html")

    @app.route("/faultmesh/api/state")
    def faultmesh_state() -> Response:
        return relay("GET", "/state")

    @app.route("/faultmesh/api/faults", methods=["POST"])
    def faultmesh_fire() -> Response:
        return relay("POST", "/faults", request.get_data())

    @app.route("/faultmesh/api/faults/<int:index>", methods=["DELETE"])
    def faultmesh_clear(index: int) -> Response:
        return relay("DELETE", f"/faults/{index}")

    @app.before_request
    def take_over_controls() -> Any:
        """STOP and EDIT end or change the run faultmesh's way, not Locust's (which would
        kill the users with their requests in flight, or restart the shape)."""
        if request.method != "POST":
            return None
        if request.path == "/stop":
            return jsonify({"success": True, "message": controls.on_stop()})
        if request.path == "/swarm":
            raw = request.form.get("user_count")
            try:
                users = int(raw) if raw not in (None, "") else None
            except ValueError:
                users = None
            if users is None or users < 1:
                return jsonify({"success": False, "host": web_ui.environment.host,
                                "message": "give a user count of at least 1"})
            done, message = controls.on_edit(users)
            return jsonify({"success": done, "message": message,
                            "host": web_ui.environment.host})
        return None

    tab_rows: dict[str, Any] = {"rows": []}

    @app.after_request
    def extend(response: Response) -> Response:
        """The tab's table rides on the UI's own stats poll; the index gets the link."""
        if request.path == "/stats/requests" and response.is_json:
            data = response.get_json()
            data["extended_stats"] = [{"key": "faultmesh", "data": _tab_rows(relay,
                                                                               tab_rows)}]
            response.set_data(json.dumps(data))
        elif request.path == "/" and response.mimetype == "text/html":
            html = response.get_data(as_text=True)
            response.set_data(html.replace("</body>", _LINK + "</body>", 1))
        return response

    web_ui.template_args["extendedTabs"] = [{"title": "faultmesh", "key": "faultmesh"}]
    web_ui.template_args["extendedTables"] = [{"key": "faultmesh", "structure": [
        {"key": "what", "title": "what"}, {"key": "state", "title": "state"},
        {"key": "detail", "title": "detail"}]}]


_LINK = ('<a id="faultmesh-link" href="/faultmesh" style="position:fixed;right:12px;'
         'bottom:12px;z-index:9999;padding:6px 10px;border-radius:6px;background:#1565c0;'
         'color:#fff;font:14px sans-serif;text-decoration:none">faultmesh tab: graph, '
         'faults, SLOs</a>')


def _tab_rows(relay: Callable[..., Any], cache: dict[str, Any]) -> list[dict[str, str]]:
    """The faultmesh tab's table: the page, each service's state, each SLO so far."""
    rows = [{"what": "page", "state": "/faultmesh",
             "detail": "graph, fault timeline, fire faults, SLOs"}]
    response = relay("GET", "/state")
    if response.status_code != 200:
        return rows + cache["rows"]
    state = json.loads(response.get_data())
    more = []
    for name, s in state["state"].items():
        rate = "" if s["rate"] is None else f"{s['rate']:g} req/s"
        more.append({"what": name, "state": s["status"],
                     "detail": f"{s['ready']}/{s['replicas']} ready {rate} "
                               + " ".join(s["faults"])})
    for slo in state["slos"]:
        more.append({"what": f"SLO {slo['name']}", "state": slo["status"],
                     "detail": f"{slo['metric']} {slo['op']} {slo['limit']:g}"})
    cache["rows"] = more
    return rows + more
