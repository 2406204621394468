"""The ten mistakes a new user most likely makes, each run as they would
make it; each must give one line on stderr (or in the response) that says
what is wrong and what to do."""
import http.client
import os
import socket

from conftest import run
from tycho_server import Server


def line_with(text, stderr):
    """The one stderr line holding `text` (the whole message on one line)."""
    lines = [l for l in stderr.splitlines() if text in l]
    assert len(lines) == 1, f"{text!r} not on one line of: {stderr}"
    return lines[0]


def app_file(tmp_path, source, name="app.lua"):
    path = tmp_path / name
    path.write_text(source)
    return path


def get(srv, path, method="GET", body=None):
    c = http.client.HTTPConnection(srv.host, srv.port, timeout=20)
    c.request(method, path, body=body)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


# 1. The app builds a router and forgets `return app`.
def test_no_handler_returned(tmp_path):
    app = app_file(tmp_path, 'local app = tycho.http.router()\n'
                             'app:get("/", function() return "hi" end)\n')
    r = run("run", str(app), "--port", "0", timeout=20)
    assert line_with("built a router", r.stderr) == (
        f"tycho: {app} built a router but returned nothing, so nothing is served: "
        "end the file with `return app`")
    assert "listening on" not in r.stderr


def test_a_plain_script_under_run_gets_no_warning(tmp_path):
    app = app_file(tmp_path, 'print("done")\n')
    r = run("run", str(app), timeout=20)
    assert (r.returncode, r.stdout, r.stderr) == (0, "done\n", "")


# 2. Port already in use.
def test_port_in_use(tmp_path):
    app = app_file(tmp_path, 'return function() return "hi" end\n')
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run("run", str(app), "--port", str(port), timeout=20)
    assert r.returncode == 1
    assert r.stderr == (f"tycho: port {port} on 127.0.0.1 is already in use (EADDRINUSE): "
                        "stop the other server, or pick another port with --port N "
                        "(--port 0 picks a free one)\n")


# 3. An awaiting call outside a task (a luv callback, a plain coroutine).
def test_async_call_outside_a_task():
    r = run("-e", "coroutine.wrap(function() tycho.sleep(0.01) end)()", timeout=20)
    assert r.returncode == 1
    line = line_with("must be called inside a task", r.stderr)
    assert line.endswith("'sleep' must be called inside a task (use tycho.spawn): it waits, "
                         "and luv callbacks and plain coroutines cannot")
    r = run("-e", "tycho.uv.new_timer():start(0, 0, function() tycho.fs.read_file('/etc/hostname') end)",
            timeout=20)
    line = line_with("must be called inside a task", r.stderr)
    assert line.startswith("tycho: callback failed")
    assert "'read_file' must be called inside a task (use tycho.spawn)" in line


# 4. A module that is not there.
def test_missing_module(tmp_path):
    app = app_file(tmp_path, 'local db = require "models.db"\nreturn function() end\n')
    r = run("run", str(app), "--port", "0", timeout=20)
    assert r.returncode == 1
    line = line_with("not found", r.stderr)
    assert line.endswith("module 'models.db' not found: create models/db.lua (or "
                         "models/db/init.lua) next to the app, or add its folder to "
                         "package.path; searched:")
    assert line.startswith(f"tycho: {app}:1: ")


# 5. A client sends a body that is not JSON.
def test_bad_json_body(tmp_path):
    app = app_file(tmp_path, 'return function(req)\n'
                             '  local body, err = req:json()\n'
                             '  if not body then return 400, {}, err end\n'
                             '  return body\n'
                             'end\n')
    with Server(app) as srv:
        status, data = get(srv, "/", "POST", b"{name: 1}")
        assert status == 400
        assert data.decode().startswith("request body is not valid JSON: ")
        assert "\n" not in data.decode()
        assert get(srv, "/", "POST", b'{"name": 1}') == (200, b'{"name":1}')


# 6. The app file is not where the user thinks.
def test_missing_app_file(tmp_path):
    r = run("run", "nope.lua", cwd=tmp_path, timeout=20)
    assert r.returncode == 2
    assert r.stderr.splitlines()[0] == (
        f"tycho: cannot open nope.lua: No such file or directory (paths are relative to "
        f"{os.path.realpath(tmp_path)}: check the file name and folder)")


# 7. A mistyped flag.
def test_wrong_flag(tmp_path):
    app = app_file(tmp_path, 'return function() end\n')
    r = run("run", str(app), "--prot", "8080", timeout=20)
    assert r.returncode == 2
    assert r.stderr.splitlines()[0] == "tycho: unknown option '--prot' for 'run' (did you mean --port?)"
    r = run("--verison", timeout=20)
    assert r.stderr.splitlines()[0] == "tycho: unknown option '--verison' (did you mean --version?)"
    r = run("run", str(app), "--xyzzy", timeout=20)  # nothing close: no guess
    assert r.stderr.splitlines()[0] == "tycho: unknown option '--xyzzy' for 'run'"


# 8. A handler returns a number (a count) as if it were the body.
def test_handler_returns_a_number(tmp_path):
    app = app_file(tmp_path, 'local items = {"a", "b", "c"}\n'
                             'return function() return #items end\n')
    with Server(app) as srv:
        assert get(srv, "/count")[0] == 500
        srv.wait_stderr(rb"handler returned the number 3")
        line = line_with("handler returned the number 3", srv.stderr.decode())
        assert line.endswith("handler returned the number 3, which is not an HTTP status: "
                             "return a string (tostring(n)) for a text body, or status, "
                             "headers, body")
        # A real status still works.
    app2 = app_file(tmp_path, 'return function() return 204 end\n', "ok.lua")
    with Server(app2) as srv:
        assert get(srv, "/")[0] == 204


# 9. res:send twice.
def test_send_twice(tmp_path):
    app = app_file(tmp_path, 'return function(req, res)\n'
                             '  res:send("first")\n'
                             '  res:send("second")\n'
                             'end\n')
    with Server(app) as srv:
        assert get(srv, "/") == (200, b"first")
        srv.wait_stderr(rb"response already sent")
        line = line_with("response already sent", srv.stderr.decode())
        assert line.startswith("tycho: handler failed: GET /: ")
        assert line.endswith("app.lua:3: response already sent: res:send, res:json and "
                             "res:redirect each end the response, so call one of them "
                             "once per request")


# 10. `tycho run` on a file with a syntax error.
def test_run_with_a_syntax_error(tmp_path):
    app_file(tmp_path, 'local app = tycho.http.router(\nreturn app\n')
    r = run("run", "app.lua", "--port", "0", cwd=tmp_path, timeout=20)
    assert r.returncode == 1
    assert r.stderr == ("tycho: app.lua:2: unexpected symbol near 'return' "
                        "(a syntax error: fix that line, then run again)\n")


# And a handler that forgets to answer at all.
def test_handler_returns_without_responding(tmp_path):
    app = app_file(tmp_path, 'return function(req, res) local x = 1 end\n')
    with Server(app) as srv:
        assert get(srv, "/x")[0] == 500
        srv.wait_stderr(rb"without responding")
        assert line_with("without responding", srv.stderr.decode()) == (
            "tycho: handler returned without responding: GET /x: call res:send(body), "
            "or return a string or a table")
