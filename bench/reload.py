#!/usr/bin/env python3
"""Hot reload benchmark (not a test): docs/hot-reload.md has the numbers.

1. Save -> first response from the new code: the app file is rewritten N
   times; after each write a keep-alive client asks GET / in a tight loop
   until the new body comes back. Prints the median and the worst.
2. Reloads under load: wrk -c64 against the app for D seconds with no
   reloads (steady state), then for D seconds while the app is saved 20
   times. Prints both throughputs and wrk's error counts.

   Steady and reload windows alternate for R rounds (the machine may be
   shared); prints each round and the median ratio.

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


def wrk(port, seconds, during=None):
    cmd = ["wrk", "-t1", "-c64", f"-d{seconds}s", f"http://127.0.0.1:{port}/"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    if during:
        during()
    out = proc.communicate()[0]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failed = sum(int(x) for x in errors.groups()) if errors else 0
    failed += int(non2xx.group(1)) if non2xx else 0
    return rps, failed, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tycho", nargs="?", default=os.path.join(ROOT, "build", "tycho"))
    ap.add_argument("--saves", type=int, default=30)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    a.tycho = os.path.abspath(a.tycho)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "app.lua")
        save(path, "steady")
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
            ratios, total_failed, done = [], 0, 0
            mark = len(lines)

            def reloads():
                gap = a.seconds / 22
                time.sleep(gap)
                for i in range(20):
                    save(path, f"load-{i}")
                    time.sleep(gap)

            # Steady and reload windows alternate, so that load from other
            # processes on the machine hits both alike.
            for r in range(a.rounds):
                steady, f1, _ = wrk(port, a.seconds)
                before = reloaded(lines)
                loaded, f2, _ = wrk(port, a.seconds, reloads)
                deadline = time.monotonic() + 5  # the last save's reload may trail wrk
                while reloaded(lines) - before < 20 and time.monotonic() < deadline:
                    time.sleep(0.01)
                done += reloaded(lines) - before
                total_failed += f1 + f2
                ratios.append(loaded / steady)
                print(f"round {r + 1}: steady {steady:.0f} req/s, with 20 saves "
                      f"{loaded:.0f} req/s ({(loaded / steady - 1) * 100:+.1f}%), "
                      f"{f1 + f2} failed")
            costs = [int(m.group(1)) for m in map(RELOAD_MS.match, lines[mark:]) if m]
            print(f"reload cost under load (from the 'reloaded' lines): median "
                  f"{statistics.median(costs)} ms, max {max(costs)} ms, "
                  f"{sum(costs) / (a.rounds * a.seconds * 10):.2f}% of the loaded windows")
            print(f"{a.rounds * 20} saves, {done} reloads under wrk -c64: median "
                  f"throughput {(statistics.median(ratios) - 1) * 100:+.1f}% of steady "
                  f"state, {total_failed} failed or reset requests")
            failures = [l for l in lines if "failed" in l]
            if failures:
                print("reload failures:", *failures, sep="\n  ")
        finally:
            proc.terminate()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
