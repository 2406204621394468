#!/usr/bin/env python3
"""Hot reload benchmark (not a test): docs/hot-reload.md has the numbers.

0. The cost of one reload, in-process: 1000 reloads in a row.
1. Save -> first response from the new code: the app file is rewritten N
   times; after each write a keep-alive client asks GET / in a tight loop
   until the new body comes back. Prints the median and the worst.
2. Reloads under load: R rounds of three wrk -c64 windows of D seconds:
   steady state; control (a file next to the app saved 20 times); reload
   (the app saved 20 times). Prints throughput, the server's CPU time per
   request (less sensitive to other load on a shared machine) and wrk's
   error counts, and the medians.

usage: bench/reload.py [path/to/tycho] [--saves N] [--seconds D] [--rounds R]
"""
import argparse
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

APP = """-- generation marker: {tag}
return function(req, res)
  res:send("{tag}")
end
"""


def start(tycho, directory):
    proc = subprocess.Popen([tycho, "run", "app.lua", "--port", "0", "--watch"],
                            cwd=directory, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    if not line.startswith("listening on "):
        raise SystemExit(f"tycho did not start: {line!r}")
    lines = []
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
    return proc, int(line.rsplit(":", 1)[1]), lines


RELOAD_MS = re.compile(r"^reloaded app\.lua in (\d+) ms$")


def reloaded(lines):
    return sum(1 for l in lines if l.startswith("reloaded"))


def save(path, tag):
    with open(path, "w") as f:
        f.write(APP.format(tag=tag))


def latency(port, path, saves):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    for i in range(saves):
        tag = f"latency-{i}"
        t0 = time.perf_counter()
        save(path, tag)
        deadline = t0 + 10
        while True:
            conn.request("GET", "/")
            body = conn.getresponse().read().decode()
            if body == tag:
                break
            if time.perf_counter() > deadline:
                raise SystemExit(f"save {i} never became live")
        out.append((time.perf_counter() - t0) * 1000)
    conn.close()
    return out


def cpu_seconds(pid):
    """User + system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(port, seconds, during=None, pid=None):
    """Runs wrk -c64; returns req/s, failed requests, and the server's CPU
    microseconds per request (less sensitive than req/s to other load on
    the machine)."""
    cmd = ["wrk", "-t1", "-c64", f"-d{seconds}s", f"http://127.0.0.1:{port}/"]
    cpu0 = cpu_seconds(pid)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    if during:
        during()
    out = proc.communicate()[0]
    cpu = cpu_seconds(pid) - cpu0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed = sum(int(x) for x in errors.groups()) if errors else 0
    failed += int(non2xx.group(1)) if non2xx else 0
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return rps, failed, cpu * 1e6 / max(total, 1)


COST = """
local reload = require "tycho.reload"
local r = reload.new(arg[1], {{ log = function() end }})
local server = tycho.http.serve {{ port = 0, handler = assert(r:load()) }}
r:attach(server)
local c0, t0 = os.clock(), tycho.hrtime()
for _ = 1, {n} do assert(r:reload()) end
print(("%.1f %.1f"):format((os.clock() - c0) * 1e6 / {n}, (tycho.hrtime() - t0) / 1e3 / {n}))
server:close()
"""


def reload_cost(tycho, directory, n=1000):
    """CPU and wall microseconds per reload, n reloads in a row in-process
    (load, run, swap, retire; no watcher, no requests)."""
    script = os.path.join(directory, "cost.lua")
    with open(script, "w") as f:
        f.write(COST.format(n=n))
    out = subprocess.run([tycho, script, os.path.join(directory, "app.lua")],
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def saver(target, seconds):
    """20 saves of target spread over a wrk window."""
    def run():
        gap = seconds / 22
        time.sleep(gap)
        for i in range(20):
            save(target, f"load-{i}")
            time.sleep(gap)
    return run


def under_load(a, port, pid, path, lines):
    """Rounds of three wrk windows: steady; control (20 saves of a file next
    to the app that it did not load: the same writes and fs events, no
    reload); reload (20 saves of the app). Interleaved, so that load from
    other processes on the machine hits all three alike."""
    kinds = {"steady": None, "control": os.path.join(os.path.dirname(path), "notes.lua"),
             "reload": path}
    rps = {k: [] for k in kinds}
    us = {k: [] for k in kinds}
    failed, done, mark = 0, 0, len(lines)
    for r in range(a.rounds):
        for kind, target in kinds.items():
            before = reloaded(lines)
            during = saver(target, a.seconds) if target else None
            x, f, u = wrk(port, a.seconds, during, pid=pid)
            rps[kind].append(x)
            us[kind].append(u)
            failed += f
            deadline = time.monotonic() + 5  # the last save's reload may trail wrk
            while kind == "reload" and reloaded(lines) - before < 20 \
                    and time.monotonic() < deadline:
                time.sleep(0.01)
            done += reloaded(lines) - before
        print(f"round {r + 1}: " + ", ".join(
            f"{k} {rps[k][-1]:.0f} req/s {us[k][-1]:.1f} us CPU/req" for k in kinds))
    costs = [int(m.group(1)) for m in map(RELOAD_MS.match, lines[mark:]) if m] or [0]
    print(f"reload cost under load (the 'reloaded' lines): median "
          f"{statistics.median(costs)} ms, max {max(costs)} ms")
    med = {k: (statistics.median(rps[k]), statistics.median(us[k])) for k in kinds}
    print("medians: " + ", ".join(f"{k} {r:.0f} req/s {u:.2f} us CPU/req"
                                  for k, (r, u) in med.items()))
    print(f"{a.rounds * 20} saves, {done} reloads under wrk -c64: throughput "
          f"{(med['reload'][0] / med['steady'][0] - 1) * 100:+.1f}% of steady state "
          f"({(med['control'][0] / med['steady'][0] - 1) * 100:+.1f}% for control), "
          f"CPU per request {(med['reload'][1] / med['steady'][1] - 1) * 100:+.1f}% "
          f"({(med['control'][1] / med['steady'][1] - 1) * 100:+.1f}% for control); "
          f"{failed} failed or reset requests")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tycho", nargs="?", default=os.path.join(ROOT, "build", "tycho"))
    ap.add_argument("--saves", type=int, default=30)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    a.tycho = os.path.abspath(a.tycho)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "app.lua")
        save(path, "steady")
        cpu_us, wall_us = reload_cost(a.tycho, d)
        print(f"one reload in-process: {cpu_us:.0f} us CPU, {wall_us:.0f} us wall "
              f"(mean of 1000)")
        proc, port, lines = start(a.tycho, d)
        try:
            ms = latency(port, path, a.saves)
            print(f"save -> live: median {statistics.median(ms):.1f} ms, "
                  f"min {min(ms):.1f} ms, max {max(ms):.1f} ms over {len(ms)} saves")
            n = reloaded(lines)
            save(path, "steady")
            deadline = time.monotonic() + 10
            while reloaded(lines) == n and time.monotonic() < deadline:
                time.sleep(0.01)
            under_load(a, port, proc.pid, path, lines)
            failures = [l for l in lines if "failed" in l]
            if failures:
                print("reload failures:", *failures, sep="\n  ")
        finally:
            proc.terminate()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
