"""Open a report in headless Chromium through the DevTools protocol and record what a reader's
browser sees: console errors and exceptions, every network request, whether each image decoded,
the sections and every image's alt text, and a screenshot."""

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import websocket

PAGE_FACTS = """JSON.stringify({
  images: Array.from(document.images).map(i => ({
    alt: i.getAttribute('alt'), ok: i.complete && i.naturalWidth > 0,
    data: i.src.startsWith('data:')})),
  sections: Array.from(document.querySelectorAll('section[id]')).map(s => s.id),
  headings: Array.from(document.querySelectorAll('h2, h3')).map(h => h.textContent.trim()),
  height: document.documentElement.scrollHeight})"""


@dataclass
class PageView:
    console_errors: list = field(default_factory=list)
    requests: list = field(default_factory=list)  # every URL other than the report and data: URIs
    images: list = field(default_factory=list)
    sections: list = field(default_factory=list)
    headings: list = field(default_factory=list)
    screenshot: bytes = b""


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    raise RuntimeError("no Chromium on PATH: make test and .ci/run install Debian's chromium")


class _Session:
    def __init__(self, url):
        self.ws = websocket.create_connection(url, timeout=60)
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(e.get("method") == method for e in self.events):
                return
            self.events.append(json.loads(self.ws.recv()))
        raise TimeoutError(f"no {method} within {timeout} s")


@contextmanager
def _browser():
    """A fresh headless Chromium: (its DevTools port, its profile folder)."""
    profile = tempfile.mkdtemp(prefix="bidsxai-chromium-")
    process = subprocess.Popen(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("Chromium did not start")
            time.sleep(0.1)
        yield port_file.read_text().split()[0], profile
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(profile, ignore_errors=True)


def _page_session(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as response:
        page = next(t for t in json.load(response) if t["type"] == "page")
    return _Session(page["webSocketDebuggerUrl"])


def download_after(report, script, folder, timeout=30):
    """Load ``report``, run ``script`` (JavaScript that makes the page download a file) and return
    the path of the file the browser saved in ``folder``."""
    with _browser() as (port, _profile):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version") as response:
            browser = _Session(json.load(response)["webSocketDebuggerUrl"])
        browser.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(folder))
        session = _page_session(port)
        session.call("Page.enable")
        session.call("Page.navigate", url=Path(report).resolve().as_uri())
        session.wait_for("Page.loadEventFired")
        session.call("Runtime.evaluate", expression=script)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = [p for p in Path(folder).iterdir() if not p.name.endswith(".crdownload")]
            if done:
                return done[0]
            time.sleep(0.1)
        raise TimeoutError(f"no download in {folder} within {timeout} s")


def evaluate(report, expression):
    """Load ``report`` and return the value of the JavaScript ``expression`` evaluated in it (the
    value it resolves to, where it is a promise)."""
    with _browser() as (port, _profile):
        session = _page_session(port)
        session.call("Page.enable")
        session.call("Page.navigate", url=Path(report).resolve().as_uri())
        session.wait_for("Page.loadEventFired")
        result = session.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        return result["result"].get("value")


def view(report, width=1300):
    """Load ``report`` (an HTML file) in a fresh headless Chromium and return a ``PageView``."""
    with _browser() as (port, _profile):
        session = _page_session(port)
        for domain in ("Page", "Runtime", "Log", "Network"):
            session.call(f"{domain}.enable")
        session.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        target = Path(report).resolve().as_uri()
        session.call("Page.navigate", url=target)
        session.wait_for("Page.loadEventFired")
        facts = json.loads(
            session.call("Runtime.evaluate", expression=PAGE_FACTS)["result"]["value"]
        )
        shot = session.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": width, "height": min(facts["height"], 6000), "scale": 1},
        )
        result = PageView(
            images=facts["images"],
            sections=facts["sections"],
            headings=facts["headings"],
            screenshot=base64.b64decode(shot["data"]),
        )
        for event in session.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                result.console_errors.append(params["exceptionDetails"].get("text"))
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                result.console_errors.append(str(params.get("args")))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                result.console_errors.append(params["entry"].get("text"))
            elif method == "Network.requestWillBeSent":
                url = params["request"]["url"]
                if url != target and not url.startswith("data:"):
                    result.requests.append(url)
        session.ws.close()
        return result
