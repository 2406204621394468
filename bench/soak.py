#!/usr/bin/env python3
"""Soak: millions of keep-alive requests against `tycho run bench/soak_app.lua`
mixed with handler errors, large bodies both ways, streamed responses and
clients that disconnect mid-request. Reports the server's RSS after the
first phase and at the end; fails (exit 1) when the end RSS is more than 10%
above the first phase's, or when the server died or logged a sanitizer report.

  bench/soak.py [--requests 2000000] [--first 100000] [--tycho build/tycho]
                [--valgrind]   (a short run under valgrind memcheck)

wrk (two threads, 32 connections) sends the keep-alive load; a Python
thread meanwhile opens connections and drops them mid-request.
"""
import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start_server(tycho, log, valgrind):
    cmd = [tycho, "run", os.path.join(ROOT, "bench", "soak_app.lua"), "--port", "0"]
    if valgrind:
        cmd = ["valgrind", "--error-exitcode=99", "--leak-check=full",
               "--errors-for-leak-kinds=definite,indirect",
               "--show-leak-kinds=definite,indirect", "--track-fds=no"] + cmd
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with open(log.name) as f:
            m = re.search(r"listening on http://[^:]+:(\d+)", f.read())
        if m:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    sys.exit("soak: the server did not start")


def disconnector(port, stop, counts):
    """Connects and leaves mid-request, in three ways, until stopped."""
    partial = [b"GET / HTTP/1.1\r\nHost: s",
               b"POST /upload HTTP/1.1\r\nHost: s\r\nContent-Length: 100000\r\n\r\n" + b"x" * 5000,
               b"GET /big HTTP/1.1\r\nHost: s\r\n\r\n"]
    i = 0
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(partial[i % 3])
            if i % 2:  # a reset rather than a FIN
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            s.close()
            counts["disconnects"] += 1
        except OSError:
            counts["errors"] += 1
        i += 1
        stop.wait(0.002)


def wrk_once(port, seconds, connections=32, threads=2):
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
         "-s", os.path.join(ROOT, "bench", "soak.lua"), f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return (int(re.search(r"(\d+) requests in", out).group(1)),
            int(non2xx.group(1)) if non2xx else 0)


ROUNDS = []  # server RSS after each wrk round, KiB


def run_wrk(port, total, pid=None):
    """Runs wrk in rounds until `total` requests were answered: 1-second
    rounds for a short phase (so it ends near its count), else 10."""
    done = non2xx = 0
    t0 = time.monotonic()
    while done < total:
        n, bad = wrk_once(port, 1 if total <= 200_000 else 10)
        done += n
        non2xx += bad
        if pid:
            ROUNDS.append(rss_kib(pid))
    return {"requests": done, "seconds": time.monotonic() - t0, "non_2xx": non2xx}


def run_client(port, total, pid=None):
    """The load without wrk (for valgrind runs, where it is slow anyway)."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    paths = ["/", "/error", "/json?x=1", "/stream", "/missing", "/big"]
    t0 = time.monotonic()
    for i in range(total):
        if i % 50 == 25:
            c.request("POST", "/upload", body=b"u" * 65536)
        else:
            c.request("GET", paths[i % len(paths)])
        c.getresponse().read()
    return {"requests": total, "seconds": time.monotonic() - t0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2_000_000)
    ap.add_argument("--first", type=int, default=100_000)
    ap.add_argument("--tycho", default=os.path.join(ROOT, "build", "tycho"))
    ap.add_argument("--valgrind", action="store_true")
    ap.add_argument("--log", default="/tmp/tycho-soak.log")
    a = ap.parse_args()
    log = open(a.log, "w")
    proc, port = start_server(a.tycho, log, a.valgrind)
    stop = threading.Event()
    counts = {"disconnects": 0, "errors": 0}
    th = threading.Thread(target=disconnector, args=(port, stop, counts), daemon=True)
    th.start()
    load = run_client if a.valgrind else run_wrk
    start_rss = rss_kib(proc.pid)
    first = load(port, a.first)
    first_rss = rss_kib(proc.pid)
    rest = load(port, a.requests - a.first, proc.pid)
    end_rss = rss_kib(proc.pid)
    stop.set()
    th.join()
    alive = proc.poll() is None
    proc.terminate()
    code = proc.wait(timeout=300)
    log.close()
    text = open(a.log).read()
    total = first["requests"] + rest["requests"]
    result = {
        "requests": total,
        "rps": round(total / (first["seconds"] + rest["seconds"])),
        "disconnects": counts["disconnects"],
        "rss_start_kib": start_rss, "rss_first_kib": first_rss, "rss_end_kib": end_rss,
        "growth_pct": round(100.0 * (end_rss - first_rss) / first_rss, 2),
        "alive": alive, "exit": code, "first": first, "rest": rest,
        "handler_errors_logged": text.count("handler failed"),
        "rss_rounds_kib": ROUNDS,
    }
    print(json.dumps(result, indent=1))
    ok = alive and end_rss <= first_rss * 1.10 and "Sanitizer" not in text
    if a.valgrind:
        m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
        result["valgrind_errors"] = int(m.group(1)) if m else -1
        print("valgrind:", "\n".join(l for l in text.splitlines() if "==" in l and
                                     ("ERROR SUMMARY" in l or "lost" in l)))
        # RSS under valgrind is valgrind's: only its verdict counts here.
        ok = alive and m is not None and m.group(1) == "0" and code != 99
    print("soak:", "ok" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
