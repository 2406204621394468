"""tycho.http.metrics() read by the Prometheus project's own parser
(python3-prometheus-client), for one process and summed over workers."""
import os
import subprocess

from prometheus_client.parser import text_string_to_metric_families

from ops_support import stop_clean
from tycho_server import Server

APP = os.path.join(os.path.dirname(__file__), "apps", "ops_app.lua")


def curl(url, *args):
    return subprocess.run(["curl", "-s", "--max-time", "20", *args, url],
                          capture_output=True, text=True, timeout=30)


def scrape(s):
    r = curl(s.url + "/metrics", "-H", "Connection: close", "-D", "-")
    head, _, body = r.stdout.partition("\n\n")  # (text mode turned CRLF into LF)
    assert "Content-Type: text/plain; version=0.0.4" in head
    families = {f.name: f for f in text_string_to_metric_families(body)}
    return families


def sample(families, family, name, **labels):
    for smp in families[family].samples:
        if smp.name == name and all(smp.labels.get(k) == v for k, v in labels.items()):
            return smp.value
    raise KeyError((name, labels))


def test_single_process_metrics_parse_and_count():
    with Server(APP) as s:
        f1 = scrape(s)
        assert f1["tycho_http_requests"].type == "counter"
        assert f1["tycho_http_request_duration_seconds"].type == "histogram"
        for g in ("tycho_http_open_connections", "tycho_lua_memory_bytes", "tycho_loop_lag_seconds"):
            assert f1[g].type == "gauge"
        for _ in range(4):
            curl(s.url + "/")
        curl(s.url + "/missing")
        curl(s.url + "/fail")
        f2 = scrape(s)
        req = "tycho_http_requests_total"

        def delta(cls):
            return (sample(f2, "tycho_http_requests", req, worker="0", **{"class": cls})
                    - sample(f1, "tycho_http_requests", req, worker="0", **{"class": cls}))
        assert delta("2xx") == 5  # four / and the first scrape
        assert delta("4xx") == 1 and delta("5xx") == 1
        h = "tycho_http_request_duration_seconds"
        count = sample(f2, h, h + "_count", worker="0")
        assert count == sample(f2, h, h + "_bucket", worker="0", le="+Inf")
        classes = sum(sample(f2, "tycho_http_requests", req, worker="0", **{"class": c})
                      for c in ("1xx", "2xx", "3xx", "4xx", "5xx", "other"))
        assert count == classes
        assert sample(f2, "tycho_lua_memory_bytes", "tycho_lua_memory_bytes", worker="0") > 10000
        assert sample(f2, "tycho_http_open_connections", "tycho_http_open_connections",
                      worker="all") >= 1
        stop_clean(s)


def test_workers_metrics_are_per_worker_and_summed():
    with Server(APP, "--workers", "2") as s:
        for _ in range(30):
            curl(s.url + "/", "-H", "Connection: close")
        f = scrape(s)
        req = "tycho_http_requests_total"
        workers = {smp.labels["worker"] for smp in f["tycho_http_requests"].samples}
        assert workers == {"1", "2", "all"}
        one = sample(f, "tycho_http_requests", req, worker="1", **{"class": "2xx"})
        two = sample(f, "tycho_http_requests", req, worker="2", **{"class": "2xx"})
        assert one + two == sample(f, "tycho_http_requests", req, worker="all", **{"class": "2xx"})
        assert one + two == 30
        h = "tycho_http_request_duration_seconds"
        assert (sample(f, h, h + "_count", worker="1") + sample(f, h, h + "_count", worker="2")
                == sample(f, h, h + "_count", worker="all"))
        mem = [sample(f, "tycho_lua_memory_bytes", "tycho_lua_memory_bytes", worker=w)
               for w in ("1", "2", "all")]
        assert mem[0] + mem[1] == mem[2]
        assert sample(f, "tycho_workers", "tycho_workers") == 2
        assert sample(f, "tycho_worker_restarts", "tycho_worker_restarts_total") == 0
        stop_clean(s)


def test_health_probes():
    with Server(APP, "--workers", "1") as s:
        live = curl(s.url + "/livez", "-w", "%{http_code}")
        ready = curl(s.url + "/readyz", "-w", "%{http_code}")
        assert live.stdout == "ok\n200"
        assert ready.stdout == "ready\n200"
        stop_clean(s)
