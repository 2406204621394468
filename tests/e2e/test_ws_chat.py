"""The chat example (examples/chat) run as a user would (`tycho run`): Python
`websockets` clients chatting, and headless Chromium loading the page,
sending a message from it and showing a message from someone else. Chromium
is driven over the DevTools protocol (--remote-debugging-port)."""
import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

import pytest
import websockets

from tycho_server import Server
from ws_support import chromium

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APP = os.path.join(ROOT, "examples", "chat", "app.lua")


@pytest.fixture(scope="module")
def srv():
    with Server(APP) as s:
        yield s
        s.stop_checked((0,))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def join(srv, name):
    ws = await websockets.connect(f"ws://{srv.host}:{srv.port}/ws")
    await ws.send(json.dumps({"type": "join", "name": name}))
    return ws


async def next_of(ws, kind):
    for _ in range(50):
        msg = json.loads(await ws.recv())
        if msg["type"] == kind:
            return msg
    raise AssertionError("no " + kind)


def test_page_and_script_are_served(srv):
    with urllib.request.urlopen(srv.url + "/", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/html")
        assert b"<script src=\"chat.js\">" in r.read()
    with urllib.request.urlopen(srv.url + "/chat.js", timeout=10) as r:
        assert b"new WebSocket" in r.read()


def test_python_clients_chat(srv):
    async def go():
        ada = await join(srv, "ada")
        assert (await next_of(ada, "joined"))["name"] == "ada"
        bob = await join(srv, "bob")
        assert (await next_of(ada, "joined")) == {"type": "joined", "name": "bob", "count": 2}
        await bob.send(json.dumps({"type": "say", "text": "hi ada ✓"}))
        assert await next_of(ada, "message") == {"type": "message", "from": "bob", "text": "hi ada ✓"}
        assert await next_of(bob, "message") == {"type": "message", "from": "bob", "text": "hi ada ✓"}
        await bob.close()
        assert (await next_of(ada, "left")) == {"type": "left", "name": "bob", "count": 1}
        await ada.close()
    run(go())


def test_bad_join_is_refused_with_1008(srv):
    async def go():
        async with websockets.connect(f"ws://{srv.host}:{srv.port}/ws") as ws:
            await ws.send("not json")
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            assert ws.close_code == 1008
    run(go())


class Chromium:
    """Headless Chromium with a fresh profile and the DevTools port on."""

    def __init__(self, url):
        self.profile = tempfile.mkdtemp(prefix="tycho-chromium-")
        self.proc = subprocess.Popen(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + 60
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not start")
            time.sleep(0.05)
        self.port = int(open(port_file).read().split()[0])

    def page_ws_url(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10) as r:
                pages = [t for t in json.loads(r.read()) if t["type"] == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.05)
        raise RuntimeError("no page target")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=20)
        self.proc.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)


async def evaluate(cdp, expr, ids=iter(range(1, 10 ** 6))):
    i = next(ids)
    await cdp.send(json.dumps({"id": i, "method": "Runtime.evaluate",
                               "params": {"expression": expr, "returnByValue": True}}))
    while True:
        msg = json.loads(await cdp.recv())
        if msg.get("id") == i:
            return msg["result"]["result"].get("value")


async def wait_text(cdp, expr, want, timeout=30):
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = await evaluate(cdp, expr)
        if got and want in got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"{want!r} never appeared; last: {got!r}")


def test_headless_chromium_sends_and_receives(srv):
    async def go():
        bot = await join(srv, "bot")
        await next_of(bot, "joined")
        browser = Chromium(f"{srv.url}/?name=chromium&say=hello%20from%20the%20browser")
        try:
            # the browser's message reaches a Python client...
            msg = await next_of(bot, "message")
            assert msg == {"type": "message", "from": "chromium", "text": "hello from the browser"}
            async with websockets.connect(browser.page_ws_url(), max_size=None) as cdp:
                status = "document.getElementById('status').textContent"
                await wait_text(cdp, status, "received: chromium: hello from the browser")
                # ...and a Python client's message shows up in the page.
                await bot.send(json.dumps({"type": "say", "text": "hello, browser"}))
                await wait_text(cdp, status, "received: bot: hello, browser")
                log = await evaluate(cdp, "document.getElementById('log').innerText")
                assert "chromium joined" in log and "bot: hello, browser" in log
        finally:
            browser.close()
        assert (await next_of(bot, "left"))["name"] == "chromium"
        await bot.close()
    run(go())
