-- Specs for the HTTP server's handler contract (src/http/*.c,
-- lua/tycho/http/init.lua), through tycho.test.request: the real connection
-- code over an in-process socket pair.
local tycho = require "tycho"
local request = tycho.test.request

describe("http handler contract", function()
  it("exposes method, path, raw_path, query, headers and header()", function()
    local seen
    local r = request(function(req)
      seen = {
        method = req.method, path = req.path, raw = req.raw_path, url = req.url,
        q = req.query, ua = req.headers["x-thing"], h = req:header("X-THING"),
        multi = req.headers["x-multi"], version = req.http_version,
        absent = select("#", req:header("x-absent")), absent_text = tostring(req:header("x-absent")),
      }
      return "ok"
    end, {
      method = "PUT", path = "/a%20b/c?x=1&y=hello+world&x=2&z",
      headers = { ["X-Thing"] = "v", ["X-Multi"] = "1" },
    })
    assert.are.equal(200, r.status)
    assert.are.equal("PUT", seen.method)
    assert.are.equal("/a b/c", seen.path)
    assert.are.equal("/a%20b/c", seen.raw)
    assert.are.equal("/a%20b/c?x=1&y=hello+world&x=2&z", seen.url)
    assert.are.same({ x = { "1", "2" }, y = "hello world", z = "" }, seen.q)
    assert.are.equal("v", seen.ua)
    assert.are.equal("v", seen.h)
    assert.are.equal(1, seen.absent) -- a missing header is one nil, not no value
    assert.are.equal("nil", seen.absent_text)
    assert.are.equal("1.1", seen.version)
  end)

  it("reads the body and decodes JSON", function()
    local app = function(req)
      local value, err = req:json()
      if not value then return 400, {}, err end
      return { got = value.n + 1 }
    end
    local r = request(app, { method = "POST", body = { n = 41 } })
    assert.are.equal(200, r.status)
    assert.are.equal("application/json", r.headers["content-type"])
    assert.are.equal('{"got":42}', r.body)
    local bad = request(app, { method = "POST", body = "{nope" })
    assert.are.equal(400, bad.status)
    assert.matches("Expected", bad.body)
  end)

  it("iterates a body in chunks", function()
    local app = function(req)
      local n, parts = 0, 0
      for chunk in req:chunks() do n = n + #chunk; parts = parts + 1 end
      return tostring(n)
    end
    local r = request(app, { method = "POST", body = string.rep("x", 100000) })
    assert.are.equal("100000", r.body)
  end)

  it("chains res:status and res:header and defaults Content-Type", function()
    local r = request(function(_, res)
      res:status(201):header("X-A", "1"):header("x-a", "2")
      res:send("made")
    end)
    assert.are.equal(201, r.status)
    assert.are.equal("2", r.headers["x-a"])
    assert.are.equal("text/plain; charset=utf-8", r.headers["content-type"])
    assert.are.equal("4", r.headers["content-length"])
    assert.are.equal("made", r.body)
  end)

  it("streams with res:write (chunked) and res:finish", function()
    local r = request(function(_, res)
      res:write("a")
      tycho.sleep(0.001)
      res:write("b")
      res:finish("c")
    end)
    assert.are.equal("chunked", r.headers["transfer-encoding"])
    assert.are.equal("abc", r.body)
  end)

  it("streams with a set Content-Length without chunking", function()
    local r = request(function(_, res)
      res:header("Content-Length", 2)
      res:write("h")
      res:finish("i")
    end)
    assert.is_nil(r.headers["transfer-encoding"])
    assert.are.equal("2", r.headers["content-length"])
    assert.are.equal("hi", r.body)
  end)

  it("answers from return values: string, table, status+headers+body", function()
    local s = request(function() return "text" end)
    assert.are.equal("text", s.body)
    assert.are.equal("text/plain; charset=utf-8", s.headers["content-type"])
    local t = request(function() return { a = 1 } end)
    assert.are.equal('{"a":1}', t.body)
    local full = request(function() return 418, { ["X-Tea"] = "yes" }, "short" end)
    assert.are.equal(418, full.status)
    assert.are.equal("yes", full.headers["x-tea"])
    assert.are.equal("short", full.body)
  end)

  it("turns a handler error into a bare 500", function()
    local r = request(function() error("secret detail") end)
    assert.are.equal(500, r.status)
    assert.are.equal("Internal Server Error\n", r.body)
    assert.is_nil(r.body:find("secret", 1, true))
  end)

  it("answers 500 when the handler returns without responding", function()
    local r = request(function() end)
    assert.are.equal(500, r.status)
  end)

  it("refuses CR/LF in a header set by the handler", function()
    local err
    local r = request(function(_, res)
      local ok, e = pcall(res.header, res, "X-Evil", "a\r\nSet-Cookie: x=1")
      err = e
      if not ok then res:send("refused") end
    end)
    assert.matches("CR, LF or NUL", err)
    assert.is_nil(r.headers["set-cookie"])
    assert.are.equal("refused", r.body)
  end)

  it("sends HEAD responses without a body", function()
    local r = request(function(_, res) res:send("twelve bytes") end, { method = "HEAD" })
    assert.are.equal("12", r.headers["content-length"])
    assert.are.equal("", r.raw:match("\r\n\r\n(.*)$"))
  end)

  it("rejects a body over the limit with 413 before the handler runs", function()
    local called = false
    local r = request(function() called = true; return "x" end, {
      method = "POST", body = string.rep("x", 2048), limits = { max_body_bytes = 1024 },
    })
    assert.are.equal(413, r.status)
    assert.is_false(called)
  end)

  it("raises a clear error for a response used after it was sent", function()
    local saved
    request(function(_, res) saved = res; res:send("x") end)
    assert.has_error(function() saved:send("again") end)
  end)

  it("names bad arguments", function()
    assert.has_error(function() tycho.http.serve() end,
      "bad argument #1 to 'serve' (table expected, got nil)")
    assert.has_error(function() tycho.http.serve({ handler = 42 }) end)
    local msg
    request(function(_, res)
      msg = select(2, pcall(function() res:status("x") end))
      res:send("")
    end)
    assert.matches("bad argument #1 to 'status'", msg)
  end)
end)

describe("tycho.http.serve", function()
  it("listens on port 0 and reports the real port; close ends it", function()
    local server = assert(tycho.http.serve { port = 0, handler = function() return "hi" end })
    assert.is_true(server.port > 0)
    server:close()
    server:wait_closed()
    assert.is_true(server.closed)
  end)

  it("returns nil, message, code when the port is taken", function()
    local a = assert(tycho.http.serve { port = 0, handler = function() return "a" end })
    local b, err, code = tycho.http.serve { port = a.port, handler = function() return "b" end }
    assert.is_nil(b)
    assert.matches("EADDRINUSE", err)
    assert.are.equal("EADDRINUSE", code)
    a:close()
  end)
end)
