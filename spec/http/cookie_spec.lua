-- Specs for cookies: req.cookies (src/http/cookie.c) and res:cookie,
-- res:clear_cookie (lua/tycho/http/cookie.lua), through tycho.test.request
-- (the real connection code over a socket pair) and over a real socket.
local tycho = require "tycho"
local request = tycho.test.request

-- The cookies a handler sees for the Cookie header `header`.
local function cookies_for(header)
  local seen
  local r = request(function(req)
    seen = req.cookies
    return "ok"
  end, { headers = header and { Cookie = header } or nil })
  assert.are.equal(200, r.status)
  return seen
end

-- The Set-Cookie lines of a response made by fn(res).
local function set_cookies(fn)
  local r = request(function(_, res)
    fn(res)
    res:send("ok")
  end)
  assert.are.equal(200, r.status, r.body)
  return r.headers["set-cookie"]
end

-- The error a handler raised inside fn(res), caught where it was raised.
local function error_of(fn)
  local err
  request(function(_, res)
    local ok, e = pcall(fn, res)
    assert.is_false(ok)
    err = e
    res:send("ok")
  end)
  return err
end

describe("req.cookies", function()
  it("parses the pairs a browser sends", function()
    assert.are.same({ a = "1", b = "2" }, cookies_for("a=1; b=2"))
  end)

  it("is an empty table without a Cookie header", function()
    assert.are.same({}, cookies_for(nil))
  end)

  it("trims blanks, unquotes values and keeps the first of a repeated name", function()
    assert.are.same({ a = "1", b = "two words", c = "" },
      cookies_for(' a = 1 ;b="two words";\tc=; a=9'))
  end)

  it("skips malformed pairs without failing", function()
    assert.are.same({ ok = "yes", e = "x=y" },
      cookies_for('novalue; =nameless; sp ace=1; ok=yes;;; e=x=y; "q"=1'))
  end)

  it("does not percent-decode values", function()
    assert.are.same({ v = "a%20b+c" }, cookies_for("v=a%20b+c"))
  end)

  it("is built once per request and may be replaced", function()
    local same, replaced
    request(function(req)
      same = rawequal(req.cookies, req.cookies)
      req.cookies = { mine = "1" }
      replaced = req.cookies.mine
      return "ok"
    end, { headers = { Cookie = "a=1" } })
    assert.is_true(same)
    assert.are.equal("1", replaced)
  end)

  it("merges several Cookie header lines (first value wins) over a real socket", function()
    local seen
    local server = assert(tycho.http.serve { port = 0, handler = function(req)
      seen = req.cookies
      return "ok"
    end })
    local s = assert(tycho.net.connect("127.0.0.1", server.port))
    s:set_timeout(10)
    assert(s:write("GET / HTTP/1.1\r\nHost: x\r\nCookie: a=1; b=2\r\n"
      .. "Cookie: b=3; c=4\r\nConnection: close\r\n\r\n"))
    local status = s:read_line()
    s:close()
    server:close()
    server:wait_closed()
    assert.are.equal("HTTP/1.1 200 OK", status)
    assert.are.same({ a = "1", b = "2", c = "4" }, seen)
  end)
end)

describe("res:cookie", function()
  it("adds one Set-Cookie line per cookie, never joined", function()
    local lines = set_cookies(function(res)
      res:cookie("a", "1"):cookie("b", "2")
      res:header("X-Other", "x")
      res:cookie("c", "")
    end)
    assert.are.same({ "a=1", "b=2", "c=" }, lines)
  end)

  it("writes every attribute", function()
    local lines = set_cookies(function(res)
      res:cookie("sid", "abc", {
        max_age = 3600, expires = 1784649600, path = "/app", domain = "example.com",
        secure = true, http_only = true, same_site = "none", partitioned = true,
      })
    end)
    assert.are.same({ "sid=abc; Max-Age=3600; Expires=Tue, 21 Jul 2026 16:00:00 GMT; "
      .. "Domain=example.com; Path=/app; Secure; HttpOnly; SameSite=None; Partitioned" }, lines)
  end)

  it("canonicalizes same_site and keeps a quoted value", function()
    local lines = set_cookies(function(res)
      res:cookie("a", '"x"', { same_site = "strict" })
      res:cookie("b", "y", { same_site = "LAX" })
    end)
    assert.are.same({ 'a="x"; SameSite=Strict', "b=y; SameSite=Lax" }, lines)
  end)

  it("keeps lines set with res:header('Set-Cookie', ...) before it", function()
    local lines = set_cookies(function(res)
      res:header("Set-Cookie", { "x=1", "y=2" })
      res:cookie("z", "3")
    end)
    assert.are.same({ "x=1", "y=2", "z=3" }, lines)
  end)

  it("raises naming the argument for a bad name or value", function()
    assert.matches("bad argument #1 to 'cookie' %(string expected, got nil%)",
      error_of(function(res) res:cookie(nil, "x") end))
    assert.matches("bad argument #1 to 'cookie' %(cookie name must be a token",
      error_of(function(res) res:cookie("a b", "x") end))
    assert.matches("bad argument #1 to 'cookie'",
      error_of(function(res) res:cookie("a;b", "x") end))
    assert.matches("bad argument #2 to 'cookie' %(string expected, got number%)",
      error_of(function(res) res:cookie("a", 1) end))
    for _, v in ipairs { "a b", "a;b", "a,b", 'a"b', "a\\b", "a\r\nb", "\xc3\xa9", '"a b"' } do
      assert.matches("bad argument #2 to 'cookie' %(cookie value contains a character",
        error_of(function(res) res:cookie("a", v) end))
    end
  end)

  it("raises naming the argument for bad options", function()
    local cases = {
      { "table expected, got string", "x" },
      { "integer expected at field 'max_age', got a fraction", { max_age = 1.5 } },
      { "integer expected at field 'expires', got string", { expires = "now" } },
      { "field 'path' must be non%-empty", { path = "/a;b" } },
      { "string expected at field 'domain', got boolean", { domain = true } },
      { "field 'same_site' must be", { same_site = "sometimes" } },
      { "same_site = \"None\" requires secure = true", { same_site = "None" } },
      { "partitioned = true requires secure = true", { partitioned = true } },
      { "field 'expires' out of range", { expires = 1 << 60 } },
      { "field 'expires' out of range", { expires = -1 << 60 } },
      { "boolean expected at field 'secure', got string", { secure = "no" } },
      { "boolean expected at field 'http_only', got number", { http_only = 0 } },
      { "boolean expected at field 'partitioned', got string", { partitioned = "yes" } },
    }
    for _, c in ipairs(cases) do
      assert.matches("bad argument #3 to 'cookie' %(" .. c[1],
        error_of(function(res) res:cookie("a", "1", c[2]) end))
    end
  end)

  it("enforces the __Secure- and __Host- prefixes", function()
    assert.matches("__Secure%- cookie requires secure",
      error_of(function(res) res:cookie("__Secure-a", "1") end))
    assert.matches("__Host%- cookie requires",
      error_of(function(res) res:cookie("__Host-a", "1", { secure = true }) end))
    assert.matches("__Host%- cookie requires",
      error_of(function(res)
        res:cookie("__Host-a", "1", { secure = true, path = "/", domain = "x.org" })
      end))
    -- browsers match the prefixes in any case (RFC 6265bis)
    assert.matches("__Secure%- cookie requires secure",
      error_of(function(res) res:cookie("__secure-a", "1") end))
    assert.matches("__Host%- cookie requires",
      error_of(function(res) res:cookie("__HOST-a", "1", { secure = true, path = "/x" }) end))
    local lines = set_cookies(function(res)
      res:cookie("__Host-a", "1", { secure = true, path = "/" })
    end)
    assert.are.same({ "__Host-a=1; Path=/; Secure" }, lines)
  end)

  it("raises after the response was sent", function()
    local err, later
    local r = request(function(_, res)
      res:send("ok")
      err = select(2, pcall(res.cookie, res, "a", "1"))
      later = res
    end)
    assert.matches("response headers were already sent", err)
    assert.is_nil(r.headers["set-cookie"])
    assert.matches("this request is over", select(2, pcall(later.cookie, later, "a", "1")))
  end)

  it("points its errors at the caller's line", function()
    local err = error_of(function(res) res:cookie("a", "b c") end)
    assert.matches("cookie_spec.lua:%d+:", err)
  end)
end)

describe("res:clear_cookie", function()
  it("expires the cookie with the same path and domain", function()
    local lines = set_cookies(function(res)
      res:clear_cookie("sid", { path = "/app", domain = "example.com", http_only = true })
      res:clear_cookie("other")
    end)
    assert.are.same({
      "sid=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Domain=example.com; "
        .. "Path=/app; HttpOnly",
      "other=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
    }, lines)
  end)

  it("raises naming the argument", function()
    assert.matches("bad argument #1 to 'clear_cookie' %(string expected, got nil%)",
      error_of(function(res) res:clear_cookie() end))
    assert.matches("bad argument #2 to 'clear_cookie' %(table expected, got string%)",
      error_of(function(res) res:clear_cookie("a", "/") end))
  end)
end)

describe("tycho.http.cookie.serialize", function()
  it("returns the Set-Cookie value without a response", function()
    local cookie = require "tycho.http.cookie"
    assert.are.equal("a=1; Path=/", cookie.serialize("a", "1", { path = "/" }))
    local ok, err = pcall(cookie.serialize, "a", "1 2")
    assert.is_false(ok)
    assert.matches("bad argument #2 to 'serialize' %(cookie value contains", err)
  end)
end)
