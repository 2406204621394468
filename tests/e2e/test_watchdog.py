"""The loop watchdog as a user meets it: `tycho run ... --block-warn MS`
names the task and the Lua line that keeps the event loop busy."""
import re
import signal
import subprocess
import urllib.request

from tycho_server import Server

BUSY = """\
local function spin(ms)
  local stop = tycho.hrtime() + ms * 1000000
  while tycho.hrtime() < stop do end
end
local function busy()
  spin(500)
end
busy()
print("finished")
"""


def write_busy(tmp_path):
    script = tmp_path / "busy.lua"
    script.write_text(BUSY)
    return script


def test_busy_script_logs_task_and_traceback(tycho, tmp_path):
    script = write_busy(tmp_path)
    r = tycho("run", str(script), "--block-warn", "100")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "finished\n"
    assert re.search(r"tycho: watchdog: the event loop has been blocked for \d+ ms by task 'main'",
                     r.stderr), r.stderr
    assert "busy.lua:3: in upvalue 'spin'" in r.stderr
    assert "busy.lua:6: in local 'busy'" in r.stderr
    assert "busy.lua:8: in main chunk" in r.stderr
    # Once per episode, then how long it lasted in all.
    assert r.stderr.count("has been blocked") == 1
    m = re.search(r"the event loop was blocked for (\d+) ms", r.stderr)
    assert m and int(m.group(1)) >= 500, r.stderr


def test_default_threshold_is_200ms(tycho, tmp_path):
    script = write_busy(tmp_path)
    r = tycho("run", str(script))
    assert r.returncode == 0, r.stderr
    assert "busy.lua:3: in upvalue 'spin'" in r.stderr


def test_zero_disables(tycho, tmp_path):
    script = write_busy(tmp_path)
    r = tycho("run", str(script), "--block-warn", "0")
    assert r.returncode == 0
    assert r.stdout == "finished\n"
    assert "watchdog" not in r.stderr


def test_quiet_when_nothing_blocks(tycho, tmp_path):
    script = tmp_path / "sleepy.lua"
    script.write_text("for _ = 1, 20 do tycho.sleep(0.02) end print('ok')\n")
    r = tycho("run", str(script), "--block-warn", "300")
    assert r.returncode == 0 and r.stdout == "ok\n"
    assert "watchdog" not in r.stderr


def test_bad_values_exit_2(tycho, tmp_path):
    script = write_busy(tmp_path)
    for bad in ("abc", "-5", "1.5"):
        r = tycho("run", str(script), "--block-warn", bad)
        assert r.returncode == 2
        assert f"bad value '{bad}' for --block-warn" in r.stderr
    r = tycho("run", str(script), "--block-warn")
    assert r.returncode == 2
    assert "'--block-warn' needs a value" in r.stderr


APP = """\
local function crunch(ms)
  local stop = tycho.hrtime() + ms * 1000000
  local n = 0
  while tycho.hrtime() < stop do n = n + 1 end
  return n
end
local app = tycho.http.router()
app:get("/busy", function(req, res)
  local n = crunch(500)
  res:send("crunched " .. tostring(n > 0))
end)
app:get("/", function(req, res) res:send("ok") end)
return app
"""


def test_busy_http_handler_names_method_and_path(tmp_path):
    app = tmp_path / "app.lua"
    app.write_text(APP)
    with Server(app, "--block-warn", "100") as srv:
        out = subprocess.run(["curl", "-sS", "--max-time", "30", srv.url + "/busy"],
                             capture_output=True, text=True, timeout=40)
        assert out.stdout == "crunched true"
        srv.wait_stderr(rb"was blocked for \d+ ms")
        err = srv.stderr.decode()
        assert "by task 'http handler' (GET /busy)" in err, err
        assert "app.lua:4: in upvalue 'crunch'" in err
        assert re.search(r"app\.lua:9: in function <[^>]*app\.lua:8>", err), err
        # The quick route never trips it.
        before = err.count("has been blocked")
        with urllib.request.urlopen(srv.url + "/", timeout=10) as resp:
            assert resp.read() == b"ok"
        with urllib.request.urlopen(srv.url + "/", timeout=10) as resp:
            assert resp.read() == b"ok"
        assert srv.stderr.decode().count("has been blocked") == before
        # SIGTERM: the watchdog thread is stopped and joined on the way out.
        srv.signal(signal.SIGTERM)
        assert srv.wait() == 0
        assert b"Sanitizer" not in srv.stderr and b"runtime error" not in srv.stderr
