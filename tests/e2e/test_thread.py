"""tycho.thread.run as a user meets it: a server whose route offloads to a
thread keeps answering other requests, thread errors reach the log with the
thread's traceback, and module names resolve from the app's directory."""
import http.client
import signal
import threading
import time

from tycho_server import Server

APP = """\
local function wait_for_file(path, seconds)
  local deadline = os.time() + seconds
  while os.time() <= deadline do
    local f = io.open(path, "r")
    if f then f:close() return true end
  end
  return false
end
local function sum_squares(n)
  local s = 0
  for i = 1, n do s = (s + i * i) % 1000000007 end
  return s
end
local marker = assert(os.getenv("MARKER"))
local app = tycho.http.router()
app:get("/", function(req, res) res:send("root") end)
app:get("/wait", function(req, res)
  res:send(tostring(tycho.thread.run(wait_for_file, marker, 20)))
end)
app:get("/sum", function(req, res)
  res:send(tostring(tycho.thread.run(sum_squares, 1000000)))
end)
app:get("/running", function(req, res)
  res:send(tostring(tycho.thread.stats().running))
end)
app:get("/fail", function(req, res)
  tycho.thread.run(function() error("thread broke") end)
end)
return app
"""


def get(srv, path, timeout=30):
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def stop_clean(srv):
    """SIGTERM: the server drains, joins its threads and exits 0, with no
    sanitizer report (under an ASan build)."""
    srv.signal(signal.SIGTERM)
    assert srv.wait() == 0
    assert b"Sanitizer" not in srv.stderr and b"runtime error" not in srv.stderr, srv.stderr


def start(tmp_path):
    app = tmp_path / "app.lua"
    app.write_text(APP)
    env = {"MARKER": str(tmp_path / "go"), "PATH": "/usr/bin:/bin"}
    return Server(app, env=env)


def test_server_answers_while_a_thread_computes(tmp_path):
    with start(tmp_path) as srv:
        result = {}
        waiter = threading.Thread(target=lambda: result.update(r=get(srv, "/wait")))
        waiter.start()
        # The thread waits for a file only we create: every answer below
        # comes while it is still running.
        for _ in range(20):
            assert get(srv, "/") == (200, "root")
        assert waiter.is_alive()
        (tmp_path / "go").write_text("x")
        waiter.join(30)
        assert result["r"] == (200, "true")
        stop_clean(srv)


def test_results_come_back_from_threads_in_parallel(tmp_path):
    expected = 0
    for i in range(1, 1000001):
        expected = (expected + i * i) % 1000000007
    with start(tmp_path) as srv:
        results = []
        workers = [threading.Thread(target=lambda: results.append(get(srv, "/sum")))
                   for _ in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        assert results == [(200, str(expected))] * 4
        stop_clean(srv)


def test_thread_error_is_500_and_logged_with_thread_traceback(tmp_path):
    with start(tmp_path) as srv:
        assert get(srv, "/fail")[0] == 500
        srv.wait_stderr(rb"thread broke")
        srv.wait_stderr(rb"thread stack traceback:\n\t\[C\]: in function 'error'\n\t[^\n]*app\.lua:27: in function <")
        assert get(srv, "/") == (200, "root")
        stop_clean(srv)


def test_module_name_resolves_on_package_path(tycho, tmp_path):
    (tmp_path / "stats.lua").write_text(
        "local M = {}\n"
        "function M.mean(t) local s = 0 for _, v in ipairs(t) do s = s + v end return s / #t end\n"
        "return M\n")
    (tmp_path / "shout.lua").write_text("return function(s) return s:upper() .. '!' end\n")
    (tmp_path / "main.lua").write_text(
        "print(tycho.thread.run('stats.mean', {1, 2, 3, 6}))\n"
        "print(tycho.thread.run('shout', 'hi'))\n"
        "print(pcall(tycho.thread.run, 'stats.median', {}))\n")
    r = tycho("main.lua", cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "3.0"
    assert lines[1] == "HI!"
    assert lines[2].startswith("false\tmodule 'stats' has no function 'median'")


def test_shutdown_interrupts_a_running_thread(tmp_path):
    app = tmp_path / "app.lua"
    app.write_text(APP)
    env = {"MARKER": str(tmp_path / "never"), "PATH": "/usr/bin:/bin"}
    with Server(app, "--grace", "1", env=env) as srv:
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
        conn.request("GET", "/wait")  # its thread would spin for 20 s
        for _ in range(1000):
            if get(srv, "/running") == (200, "1"):
                break
        assert get(srv, "/running") == (200, "1")
        t0 = time.monotonic()
        # Past the grace second the process exits; teardown interrupts the
        # thread instead of waiting the 20 s out.
        stop_clean(srv)
        assert time.monotonic() - t0 < 10
        conn.close()
