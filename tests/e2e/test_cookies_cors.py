"""Cookies and CORS as clients nobody here wrote see them: Python's
http.cookies and http.cookiejar parse our Set-Cookie lines, curl's cookie
jar round-trips them, and Node's fetch sends Origin (and a preflight) to the
CORS middleware."""
import http.client
import http.cookiejar
import http.cookies
import json
import os
import subprocess
import urllib.request

import pytest

from tycho_server import Server

APP = r'''
local app = tycho.http.router()
app:use(tycho.http.cors {
  origins = function(origin) return origin == "http://app.example" end,
  credentials = true, expose = { "X-Total" }, max_age = 600,
  methods = { "GET", "POST", "DELETE" },
})
app:get("/login", function(req, res)
  res:cookie("sid", "s3cr3t", { path = "/", http_only = true, same_site = "Lax",
    max_age = 3600 })
  res:cookie("theme", '"dark"', { path = "/", expires = 4102444800 })
  res:cookie("scoped", "1", { path = "/account" })
  return { ok = true }
end)
app:get("/whoami", function(req) return req.cookies end)
app:get("/account/whoami", function(req) return req.cookies end)
app:get("/logout", function(req, res)
  res:clear_cookie("sid", { path = "/" })
  return { ok = true }
end)
app:get("/api/items", function(req, res)
  res:header("X-Total", "2")
  return { "a", "b" }
end)
app:delete("/api/items", function() return { deleted = true } end)
return app
'''


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    app = tmp_path_factory.mktemp("cookies") / "app.lua"
    app.write_text(APP)
    with Server(app) as s:
        yield s


def get(srv, path, headers=None, method="GET"):
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp, resp.read()
    finally:
        conn.close()


# --- cookies ---------------------------------------------------------------

def test_each_cookie_is_its_own_set_cookie_line_python_parses(srv):
    resp, body = get(srv, "/login")
    assert resp.status == 200 and json.loads(body) == {"ok": True}
    lines = resp.msg.get_all("Set-Cookie")
    assert len(lines) == 3, lines
    jar = http.cookies.SimpleCookie()
    for line in lines:
        jar.load(line)
    assert jar["sid"].value == "s3cr3t"
    assert jar["sid"]["path"] == "/"
    assert jar["sid"]["max-age"] == "3600"
    assert jar["sid"]["httponly"] is True
    assert jar["sid"]["samesite"] == "Lax"
    assert jar["theme"].value == "dark"  # the quotes are the cookie's framing
    assert jar["theme"]["expires"] == "Fri, 01 Jan 2100 00:00:00 GMT"
    assert jar["scoped"]["path"] == "/account"


def test_python_cookiejar_stores_sends_and_clears(srv):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(srv.url + "/login", timeout=10) as r:
        assert r.status == 200
    stored = {c.name: c for c in jar}
    assert set(stored) == {"sid", "theme", "scoped"}
    assert stored["sid"].has_nonstandard_attr("HttpOnly")
    assert stored["scoped"].path == "/account"
    with opener.open(srv.url + "/whoami", timeout=10) as r:
        assert json.loads(r.read()) == {"sid": "s3cr3t", "theme": "dark"}
    with opener.open(srv.url + "/account/whoami", timeout=10) as r:
        assert json.loads(r.read()) == {"sid": "s3cr3t", "theme": "dark", "scoped": "1"}
    with opener.open(srv.url + "/logout", timeout=10) as r:
        assert r.status == 200
    assert {c.name for c in jar} == {"theme", "scoped"}
    with opener.open(srv.url + "/whoami", timeout=10) as r:
        assert json.loads(r.read()) == {"theme": "dark"}


def curl(*args):
    p = subprocess.run(["curl", "-sS", "--max-time", "10", *args],
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout


def test_curl_cookie_jar_round_trip(srv, tmp_path):
    jar = str(tmp_path / "jar.txt")
    assert json.loads(curl("-c", jar, "-b", jar, srv.url + "/login")) == {"ok": True}
    text = open(jar).read()
    assert "#HttpOnly_127.0.0.1\tFALSE\t/\tFALSE\t" in text  # sid, HttpOnly
    assert "\tsid\ts3cr3t" in text
    assert "\t/account\tFALSE\t" in text
    assert json.loads(curl("-c", jar, "-b", jar, srv.url + "/whoami")) == \
        {"sid": "s3cr3t", "theme": "dark"}
    curl("-c", jar, "-b", jar, srv.url + "/logout")
    assert "\tsid\t" not in open(jar).read()
    assert json.loads(curl("-c", jar, "-b", jar, srv.url + "/whoami")) == {"theme": "dark"}


def test_browser_like_cookie_header_is_parsed_leniently(srv):
    resp, body = get(srv, "/whoami", {"Cookie": 'a=1;b = "two" ; junk; a=2; =x; c='})
    assert resp.status == 200
    assert json.loads(body) == {"a": "1", "b": "two", "c": ""}


# --- CORS, with Node's fetch ---------------------------------------------

NODE_FETCH = r'''
const [url, origin] = process.argv.slice(1);
const pick = (r) => {
  const h = {};
  for (const [k, v] of r.headers) if (k.startsWith("access-control") || k === "vary") h[k] = v;
  return h;
};
const pre = await fetch(url, { method: "OPTIONS", headers: {
  Origin: origin, "Access-Control-Request-Method": "DELETE",
  "Access-Control-Request-Headers": "x-token" } });
const simple = await fetch(url, { headers: { Origin: origin } });
const plain = await fetch(url);
console.log(JSON.stringify({
  preflight: { status: pre.status, headers: pick(pre), body: await pre.text() },
  simple: { status: simple.status, headers: pick(simple), body: await simple.json() },
  plain: { status: plain.status, headers: pick(plain) },
}));
'''


def node_fetch(srv, origin):
    p = subprocess.run(["node", "--input-type=module", "-e", NODE_FETCH,
                        srv.url + "/api/items", origin],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return json.loads(p.stdout)


def test_node_fetch_preflight_and_simple_request_from_allowed_origin(srv):
    out = node_fetch(srv, "http://app.example")
    pre = out["preflight"]
    assert pre["status"] == 204 and pre["body"] == ""
    assert pre["headers"] == {
        "access-control-allow-origin": "http://app.example",
        "access-control-allow-credentials": "true",
        "access-control-allow-methods": "GET, POST, DELETE",
        "access-control-allow-headers": "x-token",
        "access-control-max-age": "600",
        "vary": "Origin, Access-Control-Request-Headers",
    }
    simple = out["simple"]
    assert simple["status"] == 200 and simple["body"] == ["a", "b"]
    assert simple["headers"] == {
        "access-control-allow-origin": "http://app.example",
        "access-control-allow-credentials": "true",
        "access-control-expose-headers": "X-Total",
        "vary": "Origin",
    }
    # No Origin: no Allow headers, but Vary: Origin, so that a cache does not
    # give this answer to a cross-origin fetch.
    assert out["plain"] == {"status": 200, "headers": {"vary": "Origin"}}


def test_node_fetch_from_refused_origin_gets_no_allow_headers(srv):
    out = node_fetch(srv, "http://evil.example")
    assert out["preflight"]["status"] == 204
    assert out["preflight"]["headers"] == {"vary": "Origin"}
    assert out["simple"]["status"] == 200
    assert out["simple"]["headers"] == {"vary": "Origin"}


def test_rest_api_example_answers_a_cross_origin_front_end():
    example = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "rest-api", "app.lua")
    front = "http://localhost:3000"
    with Server(example) as s:
        pre, _ = get(s, "/todos", {"Origin": front, "Access-Control-Request-Method": "POST",
                                   "Access-Control-Request-Headers": "content-type"},
                     method="OPTIONS")
        assert pre.status == 204
        assert pre.getheader("Access-Control-Allow-Origin") == front
        assert pre.getheader("Access-Control-Allow-Methods") == "GET, POST, PATCH, DELETE"
        assert pre.getheader("Access-Control-Allow-Headers") == "Content-Type"
        conn = http.client.HTTPConnection(s.host, s.port, timeout=10)
        conn.request("POST", "/todos", body=json.dumps({"title": "from the front-end"}),
                     headers={"Origin": front, "Content-Type": "application/json"})
        made = conn.getresponse()
        assert made.status == 201 and json.loads(made.read())["title"] == "from the front-end"
        conn.close()
        assert made.getheader("Access-Control-Allow-Origin") == front
        assert made.getheader("Access-Control-Expose-Headers") == "Location"
        assert made.getheader("Location") == "/todos/1"
        other, _ = get(s, "/todos", {"Origin": "http://elsewhere.example"})
        assert other.status == 200 and other.getheader("Access-Control-Allow-Origin") is None
