#!/usr/bin/env python3
"""WebSocket benchmark (not a test): Tycho's server against Node's `ws`
server, in the same run, loaded by the same Node `ws` client (ws_load.js).

1. Echo: C connections each keep one 32-byte message in flight for D
   seconds; prints round trips per second.
2. Broadcast: N clients (1 000 and 10 000) join a room; one sends "go" and
   the server sends "tick" to every member; the time until the last member
   has it, median of R rounds.

3. permessage-deflate (--json): Tycho's server alone, C connections each
   echoing a 10 KB JSON document for D seconds, on /echo (no compression)
   and /echo_deflate (permessage-deflate, ws's client defaults); prints
   round trips per second and bytes on the wire per round trip (both
   directions, frame headers included).

Each server runs twice (order Tycho, Node, Node, Tycho) and keeps its
better run. Prints a table and the Tycho/Node ratios (docs/websocket.md has the
numbers). Needs `npm install` in tests/e2e/node.

usage: bench/ws.py [path/to/tycho] [--conns C] [--seconds D] [--rounds R] [--json]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def start(cmd):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("port "):
        p.kill()
        sys.exit("server did not start: " + p.stderr.read())
    return p, int(line.split()[1])


def load(*args):
    p = subprocess.run(["node", os.path.join(HERE, "ws_load.js"), *map(str, args)],
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        sys.exit("load generator failed: " + p.stderr)
    return json.loads(p.stdout)


def measure(name, cmd, a):
    proc, port = start(cmd)
    try:
        e = load("echo", port, a.conns, a.seconds)
        out = {"echo_rps": e["roundtrips"] / e["seconds"]}
        for clients in (1000, 10000):
            b = load("broadcast", port, clients, a.rounds)
            out[f"fanout_{clients}_ms"] = statistics.median(b["fanout_ms"])
        return out
    finally:
        proc.kill()
        proc.wait()


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_json(tycho, a):
    """Compression on and off, each twice (off, on, on, off), best run kept."""
    proc, port = start([tycho, os.path.join(HERE, "ws_app.lua")])
    try:
        runs = {"/echo": [], "/echo_deflate": []}
        for path in ("/echo", "/echo_deflate", "/echo_deflate", "/echo"):
            cpu = cpu_seconds(proc.pid)
            r = load("json", port, a.conns, a.seconds, path)
            r["server_cpu_s"] = cpu_seconds(proc.pid) - cpu
            runs[path].append(r)
            print(path, json.dumps(r), flush=True)
    finally:
        proc.kill()
        proc.wait()
    # per round trip: the message goes and comes back, so "wire B" counts
    # two messages; "server us" is Tycho's CPU time (inflate + deflate)
    print(f"{'10 KB JSON echo':24}{'msgs/s':>12}{'wire B/rt':>12}{'server us/rt':>14}")
    for path, label in (("/echo", "uncompressed"), ("/echo_deflate", "permessage-deflate")):
        best = max(runs[path], key=lambda r: r["roundtrips"] / r["seconds"])
        print(f"{label:24}{best['roundtrips'] / best['seconds']:12.0f}"
              f"{best['wire_bytes'] / best['roundtrips']:12.0f}"
              f"{best['server_cpu_s'] * 1e6 / best['roundtrips']:14.1f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tycho", nargs="?", default=os.path.join(ROOT, "build", "tycho"))
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--json", action="store_true", help="only the permessage-deflate measure")
    a = ap.parse_args()
    if a.json:
        measure_json(a.tycho, a)
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 30000), hard))
    cmds = {"tycho": [a.tycho, os.path.join(HERE, "ws_app.lua")],
            "node": ["node", os.path.join(HERE, "ws_node.js")]}
    # A, B, B, A: both servers get an early and a late slot on a machine
    # whose load drifts; each figure is the better of a server's two runs.
    runs = {"tycho": [], "node": []}
    for name in ("tycho", "node", "node", "tycho"):
        runs[name].append(measure(name, cmds[name], a))
        print(name, json.dumps(runs[name][-1]), flush=True)
    results = {name: {"echo_rps": max(r["echo_rps"] for r in rs),
                      **{k: min(r[k] for r in rs) for k in rs[0] if k.startswith("fanout")}}
               for name, rs in runs.items()}
    t, n = results["tycho"], results["node"]
    print(f"{'':24}{'tycho':>12}{'node ws':>12}{'tycho/node':>12}")
    print(f"{'echo round trips/s':24}{t['echo_rps']:12.0f}{n['echo_rps']:12.0f}"
          f"{t['echo_rps'] / n['echo_rps']:12.2f}")
    for clients in (1000, 10000):
        k = f"fanout_{clients}_ms"
        # for times, the ratio is node/tycho so that > 1 means Tycho is faster
        print(f"{'fan-out ' + str(clients) + ' (ms)':24}{t[k]:12.2f}{n[k]:12.2f}"
              f"{n[k] / t[k]:12.2f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
