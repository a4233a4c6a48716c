"""The interactive report in headless Chromium, driven over the DevTools protocol: it loads
with no console error and no request other than file://, hovering a heatmap cell shows both
model ids, the ordering applies to every matrix, and a click on a consistency cell shows the
two datasets' matrices, and hovering a layer x layer cell shows both modules."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import websocket
from test_report import make_results
from test_report_interactive import write_layers

from conftest import SEED, run_cli

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
POLL_S, POLLS = 0.1, 600  # a bound on waiting for the page, not a performance check


class Page:
    """A minimal DevTools-protocol client for one page target (commands and their events)."""

    def __init__(self, url: str):
        self.ws = websocket.create_connection(url, suppress_origin=True, timeout=120)
        self.counter, self.events = 0, []

    def send(self, method: str, **params) -> dict:
        self.counter += 1
        self.ws.send(json.dumps({"id": self.counter, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.counter:
                assert "error" not in message, (method, message["error"])
                return message.get("result", {})
            self.events.append(message)

    def wait_event(self, method: str) -> dict:
        while True:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(json.loads(self.ws.recv()))

    def eval(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def until(self, expression: str):
        """Poll a JS expression until it is truthy; returns its value."""
        for _ in range(POLLS):
            value = self.eval(expression)
            if value:
                return value
            time.sleep(POLL_S)
        raise AssertionError(f"never true in the page: {expression}")

    def mouse(self, kind: str, x: float, y: float) -> None:
        self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left",
                  clickCount=1 if kind != "mouseMoved" else 0)


def debugger_url(profile: Path, proc: subprocess.Popen) -> str:
    """The page target's websocket, from the port Chromium writes into its profile."""
    port_file = profile / "DevToolsActivePort"
    for _ in range(POLLS):
        if port_file.is_file() and port_file.read_text().strip():
            break
        assert proc.poll() is None, "chromium exited early"
        time.sleep(POLL_S)
    port = port_file.read_text().split()[0]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=60) as reply:
        targets = json.load(reply)
    return next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed (scripts/setup-test-system.sh installs it)")
    root = tmp_path_factory.mktemp("run") / "results"
    models = make_results(root)
    write_layers(root)  # model_0 and model_1 get layer rows in one dataset
    run_cli("pysim-report", "--results-dir", root, "--out-dir", root / "report", "--models",
            models, "--dataset-info", SEED / "dataset_info.json", check=True)
    profile = tmp_path_factory.mktemp("profile")
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", f"--user-data-dir={profile}", "--window-size=1400,1000",
         "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page = Page(debugger_url(profile, proc))
        for domain in ("Page", "Runtime", "Network", "Log"):
            page.send(f"{domain}.enable")
        page.send("Page.navigate", url=(root / "report" / "index.html").resolve().as_uri())
        page.wait_event("Page.loadEventFired")
        page.until("document.querySelectorAll('#sim-grid .main-svg').length > 0")
        yield page
        page.ws.close()
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_loads_offline_without_console_errors(page):
    page.eval("1")  # drain pending events
    requests = [e["params"]["request"]["url"] for e in page.events
                if e.get("method") == "Network.requestWillBeSent"]
    assert any(u.endswith("/report/assets/plotly.min.js") for u in requests), requests
    # data: URLs are Plotly's own heatmap rasters, made in the page: no network either
    assert [u for u in requests if not u.startswith(("file://", "data:image/png"))] == []
    errors = [e for e in page.events
              if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled"
                  and e["params"]["type"] in ("error", "assert"))
              or (e.get("method") == "Log.entryAdded"
                  and e["params"]["entry"]["level"] == "error")]
    assert errors == []
    # 3 datasets of the first metric; each heatmap 6 x 6
    assert page.eval("document.querySelectorAll('#sim-grid .plot').length") == 3
    assert page.eval("document.querySelector('#sim-grid .plot').data[0].z.length") == 6


def cell_centre(page: Page, plot: str, row: int, col: int) -> tuple[float, float]:
    """Viewport coordinates of a heatmap cell's centre (rows top to bottom)."""
    rect = page.eval(f"(() => {{ const p = {plot}; p.scrollIntoView();"
                     "const r = p.querySelector('.nsewdrag').getBoundingClientRect();"
                     "return [r.left, r.top, r.width, r.height, p.data[0].x.length]; })()")
    left, top, width, height, n = rect
    return left + (col + 0.5) * width / n, top + (row + 0.5) * height / n


def test_hovering_a_cell_shows_both_models(page):
    plot = "document.querySelectorAll('#sim-grid .plot')[1]"
    row_id, col_id = page.eval(f"[{plot}.data[0].y[1], {plot}.data[0].x[4]]")
    assert row_id != col_id
    page.mouse("mouseMoved", *cell_centre(page, plot, 1, 4))
    label = page.until(f"{plot}.querySelector('.hoverlayer').textContent")
    assert row_id in label and col_id in label, label
    assert "similarity:" in label and "(" in label  # categories and the value


def test_ordering_applies_to_every_matrix(page):
    expected = page.eval("JSON.parse(document.getElementById('pysim-data').textContent)"
                         ".similarity.orders.objective")
    page.eval("(() => { const s = document.getElementById('sim-order'); s.value = 'objective';"
              "s.dispatchEvent(new Event('change')); })()")
    axes = page.eval("Array.from(document.querySelectorAll('#sim-grid .plot'))"
                     ".map((p) => p.data[0].x)")
    assert axes == [expected] * 3


def test_clicking_consistency_shows_both_datasets(page):
    plot = "document.querySelector('.consistency-plot')"
    names = page.eval(f"[{plot}.data[0].y[0], {plot}.data[0].x[2]]")
    x, y = cell_centre(page, plot, 0, 2)
    page.mouse("mouseMoved", x, y)
    page.mouse("mousePressed", x, y)
    page.mouse("mouseReleased", x, y)
    shown = page.until("(() => { const p = document.querySelectorAll("
                       "'.pair-plots[data-metric] .plot');"
                       "return p.length === 2 && Array.from(p).map((d) => d.dataset.dataset); })()")
    assert shown == names


def test_hovering_a_layer_cell_shows_both_modules(page):
    plot = "document.getElementById('layer-plot')"
    page.until(f"{plot}.querySelector('.main-svg')")  # its matrices load on demand
    # model_0's primary and 4 modules x model_1's primary ("pool", recorded) and 2 modules,
    # at relative depth
    assert page.eval(f"{plot}.data[0].z.length") == 5
    assert page.eval(f"{plot}.data[0].x") == [0, 0.5, 1]
    x, y = page.eval(f"(() => {{ const p = {plot}; p.scrollIntoView();"
                     "const r = p.querySelector('.main-svg').getBoundingClientRect();"
                     "const xa = p._fullLayout.xaxis, ya = p._fullLayout.yaxis;"
                     "return [r.left + xa._offset + xa.l2p(1), "
                     "r.top + ya._offset + ya.l2p(3 / 4)]; })()")
    page.mouse("mouseMoved", x, y)
    label = page.until(f"{plot}.querySelector('.hoverlayer').textContent")
    assert "model_0@blocks.1" in label and "model_1@fc" in label, label
