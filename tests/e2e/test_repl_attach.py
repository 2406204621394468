"""REPL into a live process: `tycho run APP --repl PATH` and `tycho attach
PATH` with piped stdin, against a server that keeps serving real HTTP
clients (Python's http.client and curl) throughout."""
import http.client
import os
import re
import socket
import stat
import subprocess

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


def start_app(tmp_path):
    """Starts `tycho run APP --port 0 --repl SOCK`; returns proc, port, sock."""
    path = tmp_path / "app.lua"
    path.write_text(APP)
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
