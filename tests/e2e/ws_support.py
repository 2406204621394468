"""Helpers for the WebSocket/SSE end-to-end tests: an app script that serves
itself (`tycho APP.lua`, printing "listening on http://HOST:PORT"), the Node
folder with the `ws` package, and the Chromium binary."""
import os
import shutil
import subprocess
import time

from conftest import TYCHO
from tycho_server import LISTEN, Server

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "node")


class ScriptServer(Server):
    """Like tycho_server.Server, for a script that calls tycho.http.serve itself."""

    def __init__(self, app, *args, env=None):  # pylint: disable=super-init-not-called
        self.proc = subprocess.Popen([TYCHO, str(app), *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env)
        self.stderr = b""
        deadline = time.monotonic() + 20
        while not LISTEN.search(self.stderr):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("server did not start: " + self.stderr.decode(errors="replace"))
            self._read(0.2)
        m = LISTEN.search(self.stderr)
        self.host, self.port = m.group(1).decode(), int(m.group(2))


def node_ready():
    """Installs the Node test packages (npm install) when they are missing."""
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "ws")):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=NODE_DIR,
                       check=True, capture_output=True, timeout=300)
    return NODE_DIR


def chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError("chromium not found: run scripts/install-deps")
    return path
