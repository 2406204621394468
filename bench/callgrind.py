"""Instructions per request under callgrind (repeatable on a busy machine).

    /usr/bin/python3 bench/callgrind.py [TYCHO] [--app bench/app.lua]
        [--path /] [--path /json] ... [--small 500] [--large 2500] [--top 25]

TYCHO defaults to build-release/tycho (build it with bench/run.sh or
cmake); the paths default to bench/app.lua's four: /, /json (res:json),
/json/encode (res:header + tycho.json.encode + res:send), /json/return.

For each path, runs `TYCHO run APP --port 0` under valgrind --tool=callgrind
twice, sends SMALL then LARGE keep-alive requests over one connection, stops
the server with SIGTERM, and prints (total(LARGE) - total(SMALL)) /
(LARGE - SMALL): start-up, first-request warm-up and shutdown cancel out.
With two or more paths it also prints the functions whose self cost per
request differs most between the first path and each other one (from
callgrind_annotate of the LARGE runs), which is where the extra work goes.
Output files stay in bench/.run/callgrind/.
"""
import argparse
import os
import re
import signal
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def request_loop(port, path, n):
    """Sends n GET requests one after another and reads each full answer."""
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % path).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        buf = b""
        for _ in range(n):
            s.sendall(req)
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("server closed the connection")
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200 "):
                raise RuntimeError("unexpected answer: %r" % head[:80])
            m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            need = int(m.group(1))
            while len(buf) < need:
                chunk = s.recv(65536)
                if not chunk:
                    raise RuntimeError("server closed the connection")
                buf += chunk
            buf = buf[need:]


def run(tycho, app, path, n, out):
    """One callgrind run serving n requests to path; returns total Ir."""
    # setarch -R: no address randomisation, so Lua's string hash seed and
    # the layout of its tables vary less between runs.
    cmd = ["setarch", "-R", "valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
           tycho, "run", app, "--port", "0"]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    port = None
    for line in p.stderr:  # valgrind's banner, then tycho's "listening on"
        m = re.search(r"listening on http://[^:]+:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        p.kill()
        raise RuntimeError("server did not start")
    try:
        request_loop(port, path, n)
    finally:
        p.send_signal(signal.SIGTERM)
        p.stderr.read()
        p.wait(timeout=120)
    with open(out) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError("no totals in " + out)


def self_costs(out):
    """Self instructions per function, from callgrind_annotate."""
    text = subprocess.run(["callgrind_annotate", "--threshold=100", "--auto=no", out],
                          capture_output=True, text=True, check=True).stdout
    costs = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+(\S.*)$", line)
        if m and "PROGRAM TOTALS" not in line and "=>" not in line:
            name = re.sub(r" \[[^\]]*\]$", "", m.group(2))
            costs[name] = costs.get(name, 0) + int(m.group(1).replace(",", ""))
    return costs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tycho", nargs="?",
                    default=os.path.join(ROOT, "build-release", "tycho"))
    ap.add_argument("--app", default=os.path.join(HERE, "app.lua"))
    ap.add_argument("--path", action="append")
    ap.add_argument("--small", type=int, default=500)
    ap.add_argument("--large", type=int, default=2500)
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args()
    paths = a.path or ["/", "/json", "/json/encode", "/json/return"]
    outdir = os.path.join(HERE, ".run", "callgrind")
    os.makedirs(outdir, exist_ok=True)
    per, files = {}, {}
    for path in paths:
        tag = re.sub(r"\W+", "_", path).strip("_") or "root"
        small = os.path.join(outdir, "%s.%d.out" % (tag, a.small))
        large = os.path.join(outdir, "%s.%d.out" % (tag, a.large))
        lo = run(a.tycho, a.app, path, a.small, small)
        hi = run(a.tycho, a.app, path, a.large, large)
        per[path] = (hi - lo) / (a.large - a.small)
        files[path] = large
        print("%-12s %8.0f instructions per request" % (path, per[path]))
        sys.stdout.flush()
    base = self_costs(files[paths[0]])
    for path in paths[1:]:
        other = self_costs(files[path])
        diff = {k: (other.get(k, 0) - base.get(k, 0)) / a.large
                for k in set(base) | set(other)}
        print("\nself instructions per request, %s minus %s (%d requests):"
              % (path, paths[0], a.large))
        for name, d in sorted(diff.items(), key=lambda kv: -abs(kv[1]))[:a.top]:
            print("%9.1f  %s" % (d, name))


if __name__ == "__main__":
    main()
