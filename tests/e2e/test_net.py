"""tycho.net, tycho.process and tycho.signal seen from outside: Tycho
scripts serving TCP, UDP and Unix sockets to Python's socket module,
a Tycho client talking to a Python server, and signals sent by Python."""
import os
import signal
import socket
import socketserver
import subprocess
import threading

import pytest

from conftest import TYCHO, check_no_sanitizer_report


def start_script(tmp_path, code, *args):
    script = tmp_path / "script.lua"
    script.write_text(code)
    env = dict(os.environ, TYCHO_E2E="from-python")
    p = subprocess.Popen([TYCHO, str(script), *map(str, args)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    return p


def first_line(p):
    line = p.stdout.readline()
    assert line, p.stderr.read()
    return line.strip()


def finish(p):
    out, err = p.communicate(timeout=30)
    check_no_sanitizer_report(err)
    assert p.returncode == 0, err
    return out


TCP_ECHO = r"""
local n = tonumber((...))
local served = 0
local srv
srv = assert(tycho.net.listen{port = 0, handler = function(conn)
  for line in conn:lines() do conn:write(line:upper() .. "\n") end
  served = served + 1
  if served == n then srv:close() end
end})
print(srv.port)
io.stdout:flush()
"""


def test_tcp_echo_server_serves_concurrent_python_clients(tmp_path):
    p = start_script(tmp_path, TCP_ECHO, 5)
    port = int(first_line(p))
    socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(5)]
    for i, s in enumerate(socks):
        s.sendall(f"client {i}\n".encode())
    for i, s in enumerate(socks):
        f = s.makefile("rb")
        assert f.readline() == f"CLIENT {i}\n".encode()
        s.shutdown(socket.SHUT_WR)
        assert f.read() == b""
        s.close()
    finish(p)


def test_tcp_server_handles_large_transfer_with_back_pressure(tmp_path):
    p = start_script(tmp_path, r"""
local srv
srv = assert(tycho.net.listen{port = 0, handler = function(conn)
  local chunk = ("x"):rep(65536)
  for _ = 1, 160 do assert(conn:write(chunk)) end -- 10 MiB
  conn:shutdown()
  srv:close()
end})
print(srv.port)
io.stdout:flush()
""")
    port = int(first_line(p))
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    total = 0
    while True:
        data = s.recv(1 << 16)
        if not data:
            break
        total += len(data)
    s.close()
    assert total == 160 * 65536
    finish(p)


def test_udp_echo(tmp_path):
    p = start_script(tmp_path, r"""
local sock = assert(tycho.net.udp{host = "127.0.0.1", port = 0})
print(sock.port)
io.stdout:flush()
for _ = 1, 3 do
  local data, from = assert(sock:receive(10))
  assert(sock:send("echo:" .. data, from.host, from.port))
end
sock:close()
""")
    port = int(first_line(p))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(10)
    for word in (b"a", b"bb", b"ccc"):
        s.sendto(word, ("127.0.0.1", port))
        data, addr = s.recvfrom(100)
        assert data == b"echo:" + word
        assert addr[1] == port
    s.close()
    finish(p)


def test_unix_socket_echo(tmp_path):
    path = str(tmp_path / "echo.sock")
    p = start_script(tmp_path, r"""
local srv
srv = assert(tycho.net.listen{path = ..., handler = function(conn)
  local line = conn:read_line()
  conn:write("unix says " .. line .. "\n")
  srv:close()
end})
print(srv.path)
io.stdout:flush()
""", path)
    assert first_line(p) == path
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    s.sendall(b"hi\n")
    assert s.makefile("rb").readline() == b"unix says hi\n"
    s.close()
    finish(p)
    assert not os.path.exists(path)


class Upper(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line.upper())


def test_tycho_client_talks_to_python_server(tmp_path):
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Upper)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        p = start_script(tmp_path, r"""
local c = assert(tycho.net.connect("127.0.0.1", tonumber((...)), {timeout = 5}))
c:set_timeout(5)
for _, w in ipairs{"one", "two", "three"} do
  c:write(w .. "\n")
  print(c:read_line())
end
c:close()
""", srv.server_address[1])
        assert finish(p).splitlines() == ["ONE", "TWO", "THREE"]
    finally:
        srv.shutdown()
        srv.server_close()


def test_signals_from_outside(tmp_path):
    p = start_script(tmp_path, r"""
local got = 0
local h = tycho.signal.on("SIGUSR1", function() got = got + 1; print("usr1", got); io.stdout:flush() end)
tycho.signal.on("SIGTERM", function() print("term taken"); io.stdout:flush() end)
print("ready")
io.stdout:flush()
assert(tycho.signal.wait("SIGUSR2", 20))
h:stop()
print("done", got)
""")
    assert first_line(p) == "ready"
    p.send_signal(signal.SIGUSR1)
    assert first_line(p) == "usr1\t1"
    p.send_signal(signal.SIGTERM)  # taken over: the process must survive
    assert first_line(p) == "term taken"
    p.send_signal(signal.SIGUSR2)
    assert first_line(p) == "done\t1"
    finish(p)


def test_process_exec_and_pipes(tmp_path):
    p = start_script(tmp_path, r"""
local out, err, code = tycho.process.exec("sh", {"-c", "read x; echo got:$x; echo oops >&2; exit 4"},
  {input = "value\n"})
print(out:gsub("\n", ""), err:gsub("\n", ""), code)
local child = assert(tycho.process.spawn("sleep", {"60"}))
print(child:kill("SIGTERM"), child:wait())
""")
    assert finish(p).splitlines() == ["got:value\toops\t4", "true\t143\tSIGTERM"]


def test_process_exit_code_and_env(tmp_path):
    p = start_script(tmp_path, r"""
print(tycho.process.pid, tycho.process.env.TYCHO_E2E, tycho.process.cwd())
io.stdout:flush()
tycho.process.exit(3)
print("not reached")
""")
    out, err = p.communicate(timeout=30)
    assert p.returncode == 3, err
    pid, value, cwd = out.split()
    assert int(pid) == p.pid
    assert value == "from-python"
    assert cwd == os.getcwd()
