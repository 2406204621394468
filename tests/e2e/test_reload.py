"""Hot reload as a user meets it: `tycho run app.lua --watch` (and SIGHUP)
with the app edited on disk while Python's http.client talks to it."""
import http.client
import os
import re
import signal
import subprocess
import threading
import time

import pytest

from conftest import TYCHO, check_no_sanitizer_report

DEADLINE = 10.0  # seconds any awaited condition may take
RELOADED = re.compile(r"^reloaded app\.lua in \d+ ms$")


class App:
    """A `tycho run` child whose stderr lines are collected as they come."""

    def __init__(self, directory, *flags):
        self.dir = directory
        self.lines = []
        self.proc = subprocess.Popen(
            [TYCHO, "run", "app.lua", "--port", "0", *flags], cwd=directory,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        line = self.wait_line(lambda l: l.startswith("listening on "))
        self.port = int(line.rsplit(":", 1)[1])

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, pred, count=1):
        """Waits (bounded) for the count-th stderr line matching pred."""
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            found = [l for l in list(self.lines) if pred(l)]
            if len(found) >= count:
                return found[count - 1]
            if self.proc.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.005)
        raise AssertionError(f"no matching stderr line; got {self.lines!r}")

    def wait_reloaded(self, count=1):
        return self.wait_line(RELOADED.match, count)

    def get(self, path="/", conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEADLINE)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read().decode()
        if conn is None:
            c.close()
        return r.status, body

    def write(self, name, text):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(text)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(timeout=DEADLINE)
        check_no_sanitizer_report("\n".join(self.lines))


def handler(body):
    return f"return function(req, res) res:send({body!r}) end\n"


@pytest.fixture
def start(tmp_path):
    apps = []

    def go(files, *flags):
        for name, text in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        app = App(str(tmp_path), *flags)
        apps.append(app)
        return app

    yield go
    for app in apps:
        app.stop()
    for app in apps:  # a sanitizer build reports leaks and UB on stderr
        bad = [l for l in app.lines if "Sanitizer" in l or "runtime error:" in l]
        assert bad == [], "\n".join(app.lines)


def test_edit_becomes_live_with_one_line_on_stderr(start):
    app = start({"app.lua": handler("one")}, "--watch")
    assert app.get() == (200, "one")
    app.write("app.lua", handler("two"))
    line = app.wait_reloaded()
    assert RELOADED.match(line)
    assert app.get() == (200, "two")


def test_syntax_error_keeps_old_code_and_names_file_line(start):
    app = start({"app.lua": handler("good")}, "--watch")
    app.write("app.lua", "return function(req, res)\n  res:send('x'\nend\n")
    app.wait_line(lambda l: "app.lua:3:" in l)
    assert app.get() == (200, "good")
    app.write("app.lua", handler("fixed"))
    app.wait_reloaded()
    assert app.get() == (200, "fixed")
    assert app.proc.poll() is None


def test_keep_alive_connection_stays_open_across_reload(start):
    app = start({"app.lua": handler("before")}, "--watch")
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=DEADLINE)
    assert app.get(conn=conn) == (200, "before")
    sock = conn.sock
    app.write("app.lua", handler("after"))
    app.wait_reloaded()
    assert app.get(conn=conn) == (200, "after")
    assert conn.sock is sock  # the same TCP connection served both
    conn.close()


SLOW_APP = """
local gate = tycho.state("gate", function() return {} end)
return function(req, res)
  if req.path == "/slow" then
    io.stderr:write("slow request entered\\n")
    io.stderr:flush()
    for _ = 1, 5000 do
      if gate.open then break end
      tycho.sleep(0.002)
    end
    return res:send("%s slow, generation " .. req.generation)
  elseif req.path == "/open" then
    gate.open = true
  end
  res:send("%s")
end
"""


def test_request_in_flight_finishes_on_old_code(start):
    app = start({"app.lua": SLOW_APP % ("old", "old")}, "--watch")
    result = {}
    t = threading.Thread(target=lambda: result.update(slow=app.get("/slow")))
    t.start()
    app.wait_line(lambda l: l == "slow request entered")
    app.write("app.lua", SLOW_APP % ("new", "new"))
    app.wait_reloaded()
    assert app.get("/open") == (200, "new")
    t.join(timeout=DEADLINE)
    assert result["slow"] == (200, "old slow, generation 1")


def test_module_in_a_subdirectory_is_reloaded(start):
    app = start({
        "app.lua": "local words = require 'lib.words'\n"
                   "return function(req, res) res:send(words.hello) end\n",
        "lib/words.lua": "return { hello = 'hello' }\n",
    }, "--watch")
    assert app.get() == (200, "hello")
    app.write("lib/words.lua", "return { hello = 'hej' }\n")
    app.wait_reloaded()
    assert app.get() == (200, "hej")


def test_editor_saves_by_rename_are_seen(start):
    app = start({"app.lua": handler("v1")}, "--watch")
    path = os.path.join(app.dir, "app.lua")
    # vim (backupcopy=no): move the original aside, write a new file.
    os.rename(path, path + "~")
    with open(path, "w") as f:
        f.write(handler("v2"))
    app.wait_reloaded()
    assert app.get() == (200, "v2")
    # Most IDEs: write a temporary file, rename it over the original.
    with open(path + ".tmp", "w") as f:
        f.write(handler("v3"))
    os.replace(path + ".tmp", path)
    app.wait_reloaded(2)
    assert app.get() == (200, "v3")


def test_state_survives_reloads(start):
    src = """
local hits = tycho.state("hits", function() return { n = 0 } end)
return function(req, res)
  hits.n = hits.n + 1
  res:send("%s " .. hits.n)
end
"""
    app = start({"app.lua": src % "a"}, "--watch")
    assert app.get() == (200, "a 1")
    app.write("app.lua", src % "b")
    app.wait_reloaded()
    assert app.get() == (200, "b 2")


def test_sighup_reloads_without_watch(start):
    app = start({"app.lua": handler("one")})
    app.write("app.lua", handler("two"))
    assert app.get() == (200, "one")
    app.proc.send_signal(signal.SIGHUP)
    app.wait_reloaded()
    assert app.get() == (200, "two")
    app.write("app.lua", "return function(\n")
    app.proc.send_signal(signal.SIGHUP)
    app.wait_line(lambda l: "app.lua:2:" in l)
    assert app.get() == (200, "two")
    assert app.proc.poll() is None


def inotify_fds(pid):
    fd_dir = f"/proc/{pid}/fd"
    links = []
    for fd in os.listdir(fd_dir):
        try:
            links.append(os.readlink(os.path.join(fd_dir, fd)))
        except OSError:
            pass
    return [l for l in links if "inotify" in l]


def test_no_watcher_runs_without_watch(start):
    plain = start({"app.lua": handler("x")})
    assert inotify_fds(plain.proc.pid) == []
    plain.stop()
    watched = start({"app.lua": handler("x")}, "--watch")
    assert len(inotify_fds(watched.proc.pid)) == 1


def test_sigterm_still_stops_a_watching_server(start):
    app = start({"app.lua": handler("x")}, "--watch")
    assert app.get() == (200, "x")
    app.proc.send_signal(signal.SIGTERM)
    assert app.proc.wait(timeout=DEADLINE) == 0


def test_access_log_names_the_generation_that_answered(start, tmp_path):
    log = tmp_path / "access.log"
    app = start({"app.lua": handler("one")}, "--watch", "--access-log", str(log))
    assert app.get("/first") == (200, "one")
    app.write("app.lua", handler("two"))
    app.wait_reloaded()
    assert app.get("/second") == (200, "two")
    end = time.monotonic() + DEADLINE
    lines = []
    while time.monotonic() < end and len(lines) < 2:  # the log is flushed in batches
        lines = log.read_text().splitlines() if log.exists() else []
        time.sleep(0.01)
    assert len(lines) == 2, lines
    assert '"GET /first ' in lines[0] and " gen=1 " in lines[0]
    assert '"GET /second ' in lines[1] and " gen=2 " in lines[1]


def test_repl_dot_reload_swaps_the_code(start, tmp_path):
    sock = str(tmp_path / "repl.sock")
    app = start({"app.lua": handler("one")}, "--repl", sock)
    app.write("app.lua", handler("two"))
    r = subprocess.run([TYCHO, "attach", sock], input=".reload\n", capture_output=True,
                       text=True, timeout=DEADLINE)
    assert r.returncode == 0, r.stderr
    assert "true" in r.stdout
    app.wait_reloaded()
    assert app.get() == (200, "two")
    app.write("app.lua", "return function(\n")
    r = subprocess.run([TYCHO, "attach", sock], input=".reload\n", capture_output=True,
                       text=True, timeout=DEADLINE)
    assert "app.lua:2:" in r.stdout + r.stderr
    assert app.get() == (200, "two")


def test_reload_after_the_app_changed_directory(start):
    src = 'tycho.process.chdir("/")\n' + handler("%s")
    app = start({"app.lua": src % "one"}, "--watch")
    assert app.get() == (200, "one")
    app.write("app.lua", src % "two")
    app.wait_reloaded()
    assert app.get() == (200, "two")
