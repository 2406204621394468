"""REPL into a live process: `tycho run APP --repl PATH` and `tycho attach
PATH` with piped stdin, against a server that keeps serving real HTTP
clients (Python's http.client and curl) throughout; and tab completion of
the remote names in `tycho attach` on a real terminal (tmux, as in
test_repl_tty.py)."""
import http.client
import json
import os
import re
import socket
import stat
import subprocess
import threading
import time

import pytest

from conftest import TYCHO, run

APP = """
hits = 0
handlers = { greet = function() return "hello" end }
return function(req, res)
  hits = hits + 1
  res:send(handlers.greet() .. " " .. hits)
end
"""


def get(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def start_app(tmp_path, app=APP):
    """Starts `tycho run APP --port 0 --repl SOCK`; returns proc, port, sock."""
    path = tmp_path / "app.lua"
    path.write_text(app)
    sock = tmp_path / "repl.sock"
    proc = subprocess.Popen([TYCHO, "run", str(path), "--port", "0", "--repl", str(sock)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    line = proc.stderr.readline()
    m = re.search(r"listening on http://[\d.]+:(\d+)", line)
    if not m:
        proc.kill()
        pytest.fail(f"app did not start: {line}{proc.stderr.read()}")
    return proc, int(m.group(1)), sock


@pytest.fixture
def app(tmp_path):
    proc, port, sock = start_app(tmp_path)
    yield proc, port, sock
    proc.terminate()
    assert proc.wait(timeout=20) == 0


def attach(sock, text):
    return run("attach", str(sock), input=text)


def test_socket_is_owner_only(app):
    _, _, sock = app
    st = os.stat(sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600


def test_attach_reads_live_state_detaches_and_the_server_goes_on(app):
    proc, port, sock = app
    for i in range(1, 4):
        assert get(port) == (200, f"hello {i}")
    r = attach(sock, "hits\nhits * 10\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "3\n30\n"
    # Detached: the process still serves, and its state moved on.
    assert get(port) == (200, "hello 4")
    assert proc.poll() is None
    r = attach(sock, "hits\n")
    assert r.stdout == "4\n"


def test_attach_changes_a_handler_table_while_serving(app):
    _, port, sock = app
    r = attach(sock, "handlers.greet = function() return 'howdy' end\n")
    assert r.returncode == 0, r.stderr
    out = subprocess.run(["curl", "-s", "--max-time", "10", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, timeout=20).stdout
    assert out == "howdy 1"


def test_attached_sessions_evaluate_inside_the_process(app):
    proc, _, sock = app
    r = attach(sock, "math.tointeger(require('luv').os_getpid())\nprint('from', 'inside')\n"
                     "tycho.sleep(0.02) return 'awaited'\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == f'{proc.pid}\nfrom\tinside\n"awaited"\n'


def test_errors_go_to_the_client_and_the_session_goes_on(app):
    _, port, sock = app
    r = attach(sock, "error('nope')\n1 + 1\n")
    assert r.returncode == 1
    assert "repl:1: nope" in r.stderr
    assert r.stdout == "2\n"
    assert get(port)[0] == 200


def test_several_clients_at_once(app):
    _, _, sock = app
    # Two raw protocol clients, interleaved, each with its own variables.
    a = socket.socket(socket.AF_UNIX)
    b = socket.socket(socket.AF_UNIX)
    a.connect(str(sock))
    b.connect(str(sock))
    fa, fb = a.makefile("rw"), b.makefile("rw")

    def until_prompt(f):
        out = []
        while True:
            line = f.readline()
            assert line, "connection closed"
            if '"t":"prompt"' in line:
                return "".join(out)
            m = re.search(r'"t":"out","s":"(.*)"', line) or re.search(r'"s":"(.*)","t":"out"', line)
            if m:
                out.append(m.group(1))

    until_prompt(fa)
    until_prompt(fb)
    fa.write('{"t":"line","s":"who = \\"a\\""}\n'); fa.flush()
    fb.write('{"t":"line","s":"who = \\"b\\""}\n'); fb.flush()
    until_prompt(fa)
    until_prompt(fb)
    fa.write('{"t":"line","s":"who"}\n'); fa.flush()
    fb.write('{"t":"line","s":"who"}\n'); fb.flush()
    assert until_prompt(fa) == '\\"a\\"\\n'
    assert until_prompt(fb) == '\\"b\\"\\n'
    a.close()
    b.close()


def test_attach_to_a_missing_socket_fails_cleanly(tmp_path):
    r = run("attach", str(tmp_path / "nope.sock"))
    assert r.returncode == 1
    assert "cannot attach" in r.stderr and "ENOENT" in r.stderr


def test_attach_needs_a_path():
    r = run("attach")
    assert r.returncode == 2


def test_repl_option_with_a_path_in_use_fails(tmp_path, app):
    _, _, sock = app
    path = tmp_path / "other.lua"
    path.write_text("return function(req, res) res:send('x') end\n")
    r = run("run", str(path), "--port", "0", "--repl", str(sock), timeout=20)
    assert r.returncode == 1
    assert "EADDRINUSE" in r.stderr


def test_reload_command_swaps_the_app(app, tmp_path):
    _, port, sock = app
    assert get(port) == (200, "hello 1")
    (tmp_path / "app.lua").write_text(APP.replace('return "hello"', 'return "reloaded"'))
    r = attach(sock, ".reload\nhits\n")
    assert r.returncode == 0, r.stderr
    assert get(port)[1].startswith("reloaded ")


# ---------------------------------------------------------------------------
# Tab completion in `tycho attach` on a terminal

COMPLETE_APP = """
inventory = { apples = 1, apricots = 2, bananas = 3 }
return function(req, res) res:send("ok") end
"""


# Tab waits this long for the answer in these tests (0.5 s by default), so
# that a loaded machine cannot make a completion give up.
PATIENT = {"TYCHO_COMPLETE_TIMEOUT": "10"}


@pytest.fixture
def attach_term(tmp_path):
    """Starts an app with COMPLETE_APP (or the given text), attaches a tmux
    terminal to it and waits for the first prompt; returns (term, port)."""
    from test_repl_tty import Term  # imports this module: import it late
    made = []

    def start(app=COMPLETE_APP, env=PATIENT):
        proc, port, sock = start_app(tmp_path, app)
        made.append(proc)
        t = Term([TYCHO, "attach", str(sock)], env={"HOME": str(tmp_path), **env}, cwd=tmp_path)
        made.append(t)
        t.wait(r"^attached to process \d+")
        t.wait(r"^>$")
        return t, port

    yield start
    for m in reversed(made):
        if isinstance(m, subprocess.Popen):
            m.terminate()
            assert m.wait(timeout=20) == 0
        else:
            m.close()


def test_tab_completes_remote_globals_and_fields(attach_term):
    t, port = attach_term()
    t.type("invent")
    t.keys("Tab")
    t.wait(r"^> inventory$")
    t.type(".ban")
    t.keys("Tab")
    t.wait(r"^> inventory\.bananas$")
    t.keys("Enter")
    t.wait(r"^> inventory\.bananas\n3\n>$")
    assert get(port) == (200, "ok")  # the app served meanwhile


def test_tab_completes_tycho_members_and_methods(attach_term):
    # A bad timeout is refused with a warning; the default applies.
    t, _ = attach_term(env={"TYCHO_COMPLETE_TIMEOUT": "soon"})
    t.wait(r"^tycho: ignoring TYCHO_COMPLETE_TIMEOUT=soon \(seconds from 0 to 10 expected\)$")
    t.type("tycho.ht")
    t.keys("Tab")
    t.wait(r"^> tycho\.http$")
    t.keys("C-u")
    t.enter("word = 'x'")
    t.type("word:up")
    t.keys("Tab")
    t.wait(r"^> word:upper$")


def test_double_tab_lists_several_candidates(attach_term):
    t, _ = attach_term()
    t.type("inventory.a")
    t.keys("Tab")  # the common prefix of apples and apricots
    t.wait(r"^> inventory\.ap$")
    t.keys("Tab")  # ambiguous: the second Tab lists them
    t.wait(r"inventory\.apples\s+inventory\.apricots")
    t.type("r")
    t.keys("Tab")
    t.wait(r"^> inventory\.apricots$")
    t.keys("Enter")
    t.wait(r"^2\n>$")


def test_tab_sees_globals_defined_in_the_session(attach_term):
    t, _ = attach_term()
    t.enter("settings = { verbose = true, version = 2 }")
    t.type("settings.verb")
    t.keys("Tab")
    t.wait(r"^> settings\.verbose$")
    t.keys("Enter")
    t.wait(r"^true\n>$")


def test_output_arriving_around_tabs_is_kept_in_order(attach_term):
    """A timer of the session prints while Tab is pressed again and again:
    whatever arrives during a completion round trip is shown afterwards, in
    order, none lost."""
    t, _ = attach_term()
    t.enter("n = 0 ticker = tycho.set_interval(5, function() n = n + 1 print('tick ' .. n) end)")
    for _ in range(30):
        t.type("invent")
        t.keys("Tab")
        t.wait(r"> inventory$")
        t.keys("C-u")
    t.line("ticker:stop() return 'stopped at ' .. n")
    n = int(t.wait(r'^"stopped at (\d+)"$').group(1))
    ticks = [int(x) for x in re.findall(r"^tick (\d+)", t.screen(), re.M)]
    assert n > 0 and ticks == list(range(1, n + 1))


class FakeServer:
    """A REPL server speaking the wire protocol from this test, so that the
    test decides when (and whether) a completion is answered: at once with
    answer(word) when set, else only by send()."""

    def __init__(self, path):
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.listener.settimeout(20)
        self.received = []
        self.answer = None
        self.cond = threading.Condition()
        self.conn = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.conn, _ = self.listener.accept()
        self.send({"t": "hello", "pid": 1, "version": "fake"}, {"t": "prompt", "s": "> "})
        buf = b""
        while True:
            data = self.conn.recv(65536)
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                if msg.get("t") == "complete" and self.answer:
                    self.send({"t": "completion", "id": msg["id"], "list": self.answer(msg["s"])})
                with self.cond:
                    self.received.append(msg)
                    self.cond.notify_all()

    def send(self, *msgs):
        self.conn.sendall(b"".join(json.dumps(m).encode() + b"\n" for m in msgs))

    def wait_for(self, pred, what):
        with self.cond:
            assert self.cond.wait_for(lambda: any(pred(m) for m in self.received), timeout=15), \
                f"the fake server never got {what}; got {self.received}"
            return next(m for m in self.received if pred(m))

    def close(self):
        if self.conn:
            self.conn.close()
        self.listener.close()
        self.thread.join(timeout=10)


def test_a_server_that_does_not_answer_leaves_the_terminal_usable(tmp_path):
    from test_repl_tty import Term
    sock = tmp_path / "fake.sock"
    srv = FakeServer(sock)
    t = Term([TYCHO, "attach", str(sock)], cwd=tmp_path,
             env={"HOME": str(tmp_path), "TYCHO_COMPLETE_TIMEOUT": "0.3"})
    try:
        t.wait(r"^attached to process 1 \(Tycho fake\)")
        t.type("abc")
        t.wait(r"^> abc$")
        start = time.monotonic()
        t.keys("Tab")
        first = srv.wait_for(lambda m: m.get("t") == "complete", "a completion request")
        assert first["s"] == "abc"
        t.type("d")  # shown once the client has given up waiting
        t.wait(r"^> abcd$")
        assert time.monotonic() - start < 10
        # The answer comes late, with output behind it: the answer is
        # dropped (the line stays), the output is shown.
        srv.send({"t": "completion", "id": first["id"], "list": ["abc_late"]},
                 {"t": "out", "s": "late output\n"})
        t.wait(r"^late output\n> abcd$")
        # From now on the server answers at once: Tab works again.
        srv.answer = lambda word: [word + "_ok"]
        t.keys("Tab")
        t.wait(r"^> abcd_ok$")
        second = srv.wait_for(lambda m: m.get("t") == "complete" and m["id"] != first["id"],
                              "a second completion request")
        assert second["s"] == "abcd"
        t.keys("Enter")
        line = srv.wait_for(lambda m: m.get("t") == "line", "the line")
        assert line["s"] == "abcd_ok"
        srv.send({"t": "prompt", "s": "> "})
        t.wait(r"^> abcd_ok\n>$")
        t.keys("C-d")
        t.wait(r"^detached\n\[exited 0\]")
    finally:
        t.close()
        srv.close()
