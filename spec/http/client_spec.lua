-- Specs for the HTTP client (lua/tycho/http/client.lua and the llhttp
-- response parser in src/http/client_parser.c): against Tycho's own server
-- and against hand-written raw TCP peers for the edge cases a friendly
-- server never produces (chunks, 1xx, read-until-close, broken responses).
local tycho = require "tycho"
local support = require "spec.support.net"
local client = require "tycho.http.client"
local http = tycho.http
local uv = tycho.uv

-- A raw HTTP/1.1 peer: reads each request head (and a Content-Length
-- body), then calls respond(conn, req) which writes whatever it likes;
-- returning "close" ends the connection. stats.conns counts connections.
local function raw_server(respond)
  local stats = { conns = 0, requests = {} }
  local srv = assert(tycho.net.listen{ port = 0, handler = function(conn)
    stats.conns = stats.conns + 1
    while true do
      local line = conn:read_line()
      if not line or line == "" then return end
      local req = { line = line, headers = {}, conn_no = stats.conns }
      while true do
        local h = conn:read_line()
        if not h or h == "" then break end
        local name, value = h:match("^([^:]+):%s*(.*)$")
        req.headers[name:lower()] = value
      end
      local len = tonumber(req.headers["content-length"] or 0)
      req.body = len > 0 and conn:read_exactly(len) or ""
      stats.requests[#stats.requests + 1] = req
      if respond(conn, req) == "close" then return end
    end
  end })
  stats.url = "http://127.0.0.1:" .. srv.port
  return srv, stats
end

local function ok_response(body, extra)
  return ("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s"):format(#body, extra or "", body)
end

before_each(function()
  client.close_idle()
  client.stats.connections, client.stats.reused = 0, 0
end)

describe("http client against Tycho's server", function()
  it("gets a response with status, headers and body", function()
    local srv = assert(http.serve{ port = 0, handler = function(req)
      return 200, { ["X-Seen-Path"] = req.path }, "hello " .. req.method
    end })
    local res = assert(http.get("http://127.0.0.1:" .. srv.port .. "/some/where?q=1"))
    assert.are.equal(200, res.status)
    assert.are.equal("OK", res.reason)
    assert.are.equal("hello GET", res.body)
    assert.are.equal("/some/where", res.headers["x-seen-path"])
    assert.are.equal(tostring(#res.body), res.headers["content-length"])
    assert.are.equal("1.1", res.version)
    client.close_idle()
    srv:close()
  end)

  it("posts a body", function()
    local srv = assert(http.serve{ port = 0, handler = function(req)
      return req.method .. ":" .. req:body()
    end })
    local res = assert(http.request{ url = "http://127.0.0.1:" .. srv.port .. "/echo",
      method = "POST", body = "payload", headers = { ["Content-Type"] = "text/plain" } })
    assert.are.equal(200, res.status)
    assert.are.equal("POST:payload", res.body)
    client.close_idle()
    srv:close()
  end)

  it("reuses one keep-alive connection for sequential requests", function()
    local ports = {}
    local srv = assert(http.serve{ port = 0, handler = function(req)
      ports[req.remote_port] = true
      return "n"
    end })
    for _ = 1, 5 do
      assert.are.equal("n", assert(http.get("http://127.0.0.1:" .. srv.port .. "/")).body)
    end
    local n = 0
    for _ in pairs(ports) do n = n + 1 end
    assert.are.equal(1, n)
    assert.are.equal(1, client.stats.connections)
    assert.are.equal(4, client.stats.reused)
    client.close_idle()
    srv:close()
  end)

  it("serves concurrent requests from several tasks, then pools their connections", function()
    local srv = assert(http.serve{ port = 0, handler = function(req) return req.path end })
    local base = "http://127.0.0.1:" .. srv.port
    local tasks = {}
    for i = 1, 8 do
      tasks[i] = tycho.spawn(function() return assert(http.get(base .. "/t" .. i)).body end)
    end
    for i = 1, 8 do assert.are.equal("/t" .. i, tasks[i]:join()) end
    assert.are.equal(8, client.stats.connections)
    assert.are.equal(8, client.idle_count("127.0.0.1:" .. srv.port))
    assert.are.equal("/again", assert(http.get(base .. "/again")).body)
    assert.are.equal(8, client.stats.connections) -- served from the pool
    client.close_idle()
    srv:close()
  end)

  it("http.get uses the client module that require returns now", function()
    -- busted resets package.loaded between spec files; tycho.http lives on.
    local srv = assert(http.serve{ port = 0, handler = function() return "x" end })
    local saved = package.loaded["tycho.http.client"]
    package.loaded["tycho.http.client"] = nil
    local fresh = require "tycho.http.client"
    local ok, err = pcall(function()
      assert(http.get("http://127.0.0.1:" .. srv.port .. "/"))
      assert.are.equal(1, fresh.stats.connections)
      fresh.close_idle()
    end)
    package.loaded["tycho.http.client"] = saved
    srv:close()
    assert(ok, err)
  end)

  it("returns 404s and other statuses as responses, not errors", function()
    local srv = assert(http.serve{ port = 0, handler = function() return 404, {}, "nope" end })
    local res = assert(http.get("http://127.0.0.1:" .. srv.port .. "/missing"))
    assert.are.equal(404, res.status)
    assert.are.equal("nope", res.body)
    client.close_idle()
    srv:close()
  end)
end)

describe("http client against raw peers", function()
  it("counts one connection for keep-alive requests and sends a proper head", function()
    local srv, stats = raw_server(function(conn) conn:write(ok_response("ok")) end)
    for _ = 1, 4 do assert.are.equal("ok", assert(http.get(stats.url .. "/k")).body) end
    assert.are.equal(1, stats.conns)
    assert.are.equal(4, #stats.requests)
    local req = stats.requests[1]
    assert.are.equal("GET /k HTTP/1.1", req.line)
    assert.are.equal("127.0.0.1:" .. srv.port, req.headers.host)
    assert.matches("^tycho/", req.headers["user-agent"])
    assert.are.equal(1, client.idle_count())
    client.close_idle()
    assert.are.equal(0, client.idle_count())
    srv:close()
  end)

  it("decodes a chunked response and keeps repeated headers", function()
    local srv, stats = raw_server(function(conn)
      conn:write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nX-A: 2\r\n\r\n"
        .. "5\r\nhello\r\n")
      conn:write("6\r\n world\r\n0\r\n\r\n")
    end)
    local res = assert(http.get(stats.url .. "/c"))
    assert.are.equal("hello world", res.body)
    assert.are.equal("1, 2", res.headers["x-a"])
    assert.are.same({ "Transfer-Encoding", "chunked", "X-A", "1", "X-A", "2" }, res.raw_headers)
    assert(http.get(stats.url .. "/c"))
    assert.are.equal(1, stats.conns) -- reused after a chunked body
    client.close_idle()
    srv:close()
  end)

  it("keeps Set-Cookie lines apart: their Expires dates hold commas", function()
    local srv, stats = raw_server(function(conn)
      conn:write(ok_response("ok", "Set-Cookie: a=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT\r\n"
        .. "Set-Cookie: b=2; Path=/\r\n"))
    end)
    local res = assert(http.get(stats.url .. "/"))
    assert.are.same({ "a=1; Expires=Wed, 21 Oct 2037 07:28:00 GMT", "b=2; Path=/" },
      res.headers["set-cookie"])
    client.close_idle()
    srv:close()
  end)

  it("reads a body delimited by the connection's close and does not pool it", function()
    local srv, stats = raw_server(function(conn)
      conn:write("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
      return "close"
    end)
    local res = assert(http.get(stats.url .. "/"))
    assert.are.equal("until the end", res.body)
    assert.are.equal(0, client.idle_count())
    assert(http.get(stats.url .. "/"))
    assert.are.equal(2, stats.conns)
    srv:close()
  end)

  it("expects no body after HEAD, 204 and 304", function()
    local srv, stats = raw_server(function(conn, req)
      if req.line:match("^HEAD") then
        conn:write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
      elseif req.line:match("/204") then
        conn:write("HTTP/1.1 204 No Content\r\n\r\n")
      else
        conn:write("HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n")
      end
    end)
    local res = assert(http.request{ url = stats.url .. "/", method = "HEAD" })
    assert.are.equal("", res.body)
    assert.are.equal("100", res.headers["content-length"])
    assert.are.equal(204, assert(http.get(stats.url .. "/204")).status)
    assert.are.equal("", assert(http.get(stats.url .. "/304")).body)
    assert.are.equal(1, stats.conns)
    client.close_idle()
    srv:close()
  end)

  it("skips a 100 Continue interim response", function()
    local srv, stats = raw_server(function(conn)
      conn:write("HTTP/1.1 100 Continue\r\n\r\n")
      conn:write(ok_response("final"))
    end)
    local res = assert(http.request{ url = stats.url .. "/", method = "PUT", body = "x" })
    assert.are.equal(200, res.status)
    assert.are.equal("final", res.body)
    client.close_idle()
    srv:close()
  end)

  it("streams a body piece by piece as it arrives", function()
    local go = false
    local srv, stats = raw_server(function(conn)
      conn:write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nfirst \r\n")
      support.wait_for(function() return go end, "the client to read the first piece")
      conn:write("6\r\nsecond\r\n0\r\n\r\n")
    end)
    local res = assert(http.request{ url = stats.url .. "/s", stream = true })
    assert.are.equal(200, res.status)
    assert.is_nil(res.body)
    assert.are.equal("first ", res:read())
    go = true
    local rest = {}
    for piece in res:chunks() do rest[#rest + 1] = piece end
    assert.are.equal("second", table.concat(rest))
    assert.is_nil(res:read())
    assert.are.equal(1, client.idle_count()) -- read to the end: pooled
    client.close_idle()
    srv:close()
  end)

  it("closes a streamed response abandoned before its end", function()
    local srv, stats = raw_server(function(conn)
      conn:write("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" .. ("z"):rep(10))
      conn:read() -- until the client hangs up
      return "close"
    end)
    local res = assert(http.request{ url = stats.url .. "/", stream = true })
    assert.are.equal("zzzzzzzzzz", res:read())
    res:close()
    assert.are.equal(0, client.idle_count())
    support.wait_for(function() return #stats.requests == 1 end, "the request")
    srv:close()
  end)

  it("reads a streamed body whole with read_all", function()
    local srv, stats = raw_server(function(conn) conn:write(ok_response(("y"):rep(100000))) end)
    local res = assert(http.request{ url = stats.url .. "/", stream = true })
    assert.are.equal(100000, #assert(res:read_all()))
    client.close_idle()
    srv:close()
  end)

  it("follows redirects only when asked, within a bound", function()
    local base
    local srv, stats = raw_server(function(conn, req)
      local path = req.line:match("^%u+ (%S+)")
      if path == "/start" then
        conn:write("HTTP/1.1 302 Found\r\nLocation: /next/step\r\nContent-Length: 5\r\n\r\nmoved")
      elseif path == "/next/step" then
        conn:write("HTTP/1.1 301 Moved\r\nLocation: final\r\nContent-Length: 0\r\n\r\n")
      elseif path == "/next/final" then
        conn:write(ok_response("arrived via " .. req.line:match("^%u+")))
      elseif path == "/post" then
        conn:write("HTTP/1.1 303 See Other\r\nLocation: " .. base .. "/next/final\r\nContent-Length: 0\r\n\r\n")
      elseif path == "/keep" then
        conn:write("HTTP/1.1 307 Temporary\r\nLocation: /echo\r\nContent-Length: 0\r\n\r\n")
      elseif path == "/echo" then
        conn:write(ok_response(req.line:match("^%u+") .. " " .. req.body))
      else
        conn:write("HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n")
      end
    end)
    base = stats.url
    local res = assert(http.get(stats.url .. "/start"))
    assert.are.equal(302, res.status)
    assert.are.equal("moved", res.body)
    res = assert(http.get(stats.url .. "/start", { follow_redirects = true }))
    assert.are.equal(200, res.status)
    assert.are.equal("arrived via GET", res.body)
    assert.are.equal(stats.url .. "/next/final", res.url)
    res = assert(http.request{ url = stats.url .. "/post", method = "POST", body = "b",
      follow_redirects = true })
    assert.are.equal("arrived via GET", res.body)
    res = assert(http.request{ url = stats.url .. "/keep", method = "POST", body = "kept",
      follow_redirects = true })
    assert.are.equal("POST kept", res.body)
    local none, err, code = http.get(stats.url .. "/loop", { follow_redirects = 3 })
    assert.is_nil(none)
    assert.are.equal("ETOOMANYREDIRECTS", code)
    assert.matches("more than 3", err)
    assert.are.equal(1, stats.conns)
    client.close_idle()
    srv:close()
  end)

  it("retries once on a fresh connection when a pooled one went stale", function()
    local srv, stats = raw_server(function(conn)
      conn:write(ok_response("once"))
      return "close" -- without telling the client: it pools the connection
    end)
    assert.are.equal("once", assert(http.get(stats.url .. "/")).body)
    support.wait_for(function() return stats.conns == 1 and #stats.requests == 1 end, "the first request")
    assert.are.equal("once", assert(http.get(stats.url .. "/")).body)
    assert.are.equal(2, stats.conns)
    assert.are.equal(2, client.stats.connections)
    client.close_idle()
    srv:close()
  end)

  it("times out a request the server never answers", function()
    local srv, stats = raw_server(function(conn)
      conn:read() -- never answers
      return "close"
    end)
    local t0 = tycho.hrtime()
    local res, err, code = http.get(stats.url .. "/", { timeout = 0.1 })
    assert.is_nil(res)
    assert.are.equal("ETIMEDOUT", code)
    assert.matches("timed out", err)
    local ms = (tycho.hrtime() - t0) / 1e6
    assert.is_true(ms >= 90 and ms < 5000, "took " .. ms .. " ms")
    srv:close()
  end)

  it("bounds the connect with connect_timeout", function()
    local port, close = support.full_listener()
    local t0 = tycho.hrtime()
    local res, err, code = http.get("http://127.0.0.1:" .. port .. "/", { connect_timeout = 0.1 })
    local ms = (tycho.hrtime() - t0) / 1e6
    close()
    assert.is_nil(res)
    assert.are.equal("ETIMEDOUT", code)
    assert.matches("connecting to 127%.0%.0%.1:" .. port, err)
    assert.is_true(ms >= 90 and ms < 5000, "took " .. ms .. " ms")
  end)

  it("reports a connection closed in the middle of a body", function()
    local srv, stats = raw_server(function(conn)
      conn:write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
      return "close"
    end)
    local res, err, code = http.get(stats.url .. "/")
    assert.is_nil(res)
    assert.are.equal("ECONNRESET", code)
    assert.matches("before the response was complete", err)
    srv:close()
  end)

  it("rejects a malformed response", function()
    local srv, stats = raw_server(function(conn)
      conn:write("HTTP/1.1 abc Broken\r\n\r\n")
      return "close"
    end)
    local res, err = http.get(stats.url .. "/")
    assert.is_nil(res)
    assert.matches("^invalid HTTP response", err)
    srv:close()
  end)

  it("bounds response headers and buffered bodies", function()
    local srv, stats = raw_server(function(conn, req)
      if req.line:match("/big%-head") then
        conn:write("HTTP/1.1 200 OK\r\nX-Big: " .. ("h"):rep(4000) .. "\r\nContent-Length: 0\r\n\r\n")
      else
        conn:write(ok_response(("b"):rep(5000)))
      end
    end)
    assert(http.get(stats.url .. "/big-head")) -- fits the default limit; pooled
    local res, err, code = http.get(stats.url .. "/big-head", { max_header_bytes = 1024 })
    assert.is_nil(res)
    assert.are.equal("ETOOLARGE", code)
    assert.matches("headers too large", err)
    res, err, code = http.get(stats.url .. "/big-body", { max_body = 1000 })
    assert.is_nil(res)
    assert.are.equal("ETOOLARGE", code)
    assert.matches("larger than 1000 bytes", err)
    -- a streamed body too: the pieces up to the limit, then the error
    res = assert(http.get(stats.url .. "/big-body", { max_body = 1000, stream = true }))
    local got = 0
    repeat
      local piece
      piece, err, code = res:read()
      got = got + (piece and #piece or 0)
    until not piece
    assert.are.equal("ETOOLARGE", code)
    assert.matches("larger than 1000 bytes", err)
    assert.is_true(got <= 1000)
    assert.are.equal(0, client.idle_count())
    srv:close()
  end)
end)

-- A body source of `n` pieces of `size` bytes, piece i filled with the
-- letter i mod 26 (so order and framing errors show), each after a loop
-- turn (a body source may await). `src.pulled` counts bytes handed out.
local function pieces(n, size)
  local src = { i = 0, pulled = 0 }
  src.next = function()
    if src.i >= n then return nil end
    src.i = src.i + 1
    tycho.sleep(0)
    src.pulled = src.pulled + size
    return string.char(97 + (src.i - 1) % 26):rep(size)
  end
  src.expected = function()
    local out = {}
    for i = 1, n do out[i] = string.char(97 + (i - 1) % 26):rep(size) end
    return table.concat(out)
  end
  return src
end

-- A Tycho server that answers with what it received: method, framing
-- headers and the body's size, and keeps the body in `got`.
local function echo_body_server(opts)
  local got = {}
  local o = { port = 0, max_body_bytes = 64 * 1024 * 1024, handler = function(req)
    local parts = {}
    for piece in req:chunks() do parts[#parts + 1] = piece end
    got.body = table.concat(parts)
    got.headers = req.headers
    return ("%s %d"):format(req.method, #got.body)
  end }
  for k, v in pairs(opts or {}) do o[k] = v end
  local srv = assert(http.serve(o))
  return srv, got, "http://127.0.0.1:" .. srv.port
end

describe("http client with a streamed request body", function()
  after_each(function() collectgarbage("restart") end) -- if a spec stopped it and failed

  it("sends several MiB from an awaiting generator chunked, then pools the connection", function()
    local srv, got, base = echo_body_server()
    local src = pieces(128, 64 * 1024) -- 8 MiB
    local res = assert(http.request{ url = base .. "/up", method = "PUT", body = src.next })
    assert.are.equal(200, res.status)
    assert.are.equal("PUT " .. 8 * 1024 * 1024, res.body)
    assert.are.equal("chunked", got.headers["transfer-encoding"])
    assert.is_nil(got.headers["content-length"])
    assert.is_true(got.body == src.expected(), "the body arrived changed")
    assert.are.equal(1, client.idle_count())
    -- A pooled connection is not taken for a body that cannot be replayed.
    assert(http.request{ url = base .. "/up", method = "PUT", body = pieces(1, 10).next })
    assert.are.equal(2, client.stats.connections)
    client.close_idle()
    srv:close()
  end)

  it("sends a file and a tycho.net connection as-is with the caller's Content-Length", function()
    local srv, got, base = echo_body_server()
    local dir = support.tmpdir("client-body")
    local data = ("0123456789abcdef"):rep(20000) .. "end" -- 320003 bytes
    assert(tycho.fs.write_file(dir .. "/f", data))
    local f = assert(tycho.fs.open(dir .. "/f"))
    local res = assert(http.request{ url = base .. "/file", method = "POST", body = f,
      headers = { ["Content-Length"] = #data } })
    f:close()
    support.rmdir(dir)
    assert.are.equal("POST " .. #data, res.body)
    assert.are.equal(tostring(#data), got.headers["content-length"])
    assert.is_nil(got.headers["transfer-encoding"])
    assert.is_true(got.body == data, "the file arrived changed")
    -- A TCP peer that sends some bytes and hangs up, streamed through.
    local peer = assert(tycho.net.listen{ port = 0, handler = function(conn)
      conn:write(("net"):rep(50000))
    end })
    local conn = assert(tycho.net.connect("127.0.0.1", peer.port))
    res = assert(http.request{ url = base .. "/net", method = "POST", body = conn })
    conn:close()
    peer:close()
    assert.are.equal("POST 150000", res.body)
    assert.are.equal("chunked", got.headers["transfer-encoding"])
    assert.is_true(got.body == ("net"):rep(50000))
    assert.are.equal(2, client.stats.connections)
    client.close_idle()
    srv:close()
  end)

  it("fails a body shorter or longer than its Content-Length and does not pool the connection", function()
    local srv, got, base = echo_body_server()
    local res, err, code = http.request{ url = base, method = "PUT", body = pieces(2, 5).next,
      headers = { ["content-length"] = "11" } }
    assert.is_nil(res)
    assert.are.equal("ECONTENTLENGTH", code)
    assert.are.equal("ECONTENTLENGTH: request body ended after 10 of 11 bytes (Content-Length)", err)
    assert.are.equal(0, client.idle_count())
    local src = pieces(3, 5)
    res, err, code = http.request{ url = base, method = "PUT", body = src.next,
      headers = { ["Content-Length"] = 9 } }
    assert.is_nil(res)
    assert.are.equal("ECONTENTLENGTH", code)
    assert.matches("longer than its Content%-Length %(9 bytes%)", err)
    assert.are.equal(2, src.i) -- stopped at the piece that went over
    assert.are.equal(0, client.idle_count())
    -- The server never saw a whole request on either; the next one is fine.
    assert.is_nil(got.body)
    assert.are.equal("PUT 10", assert(http.request{ url = base, method = "PUT",
      body = pieces(2, 5).next, headers = { ["Content-Length"] = "10" } }).body)
    assert.are.equal(3, client.stats.connections)
    client.close_idle()
    srv:close()
  end)

  it("aborts the request when the body source fails", function()
    local srv, got, base = echo_body_server()
    local before = support.open_fds()
    local n = 0
    local res, err, code = http.request{ url = base, method = "PUT", body = function()
      n = n + 1
      if n == 3 then error("disk on fire") end
      return "piece"
    end }
    assert.is_nil(res)
    assert.are.equal("EBODY", code)
    assert.matches("^EBODY: request body failed: .*disk on fire", err)
    res, err, code = http.request{ url = base, method = "PUT", body = function()
      return nil, "EIO: input/output error"
    end }
    assert.is_nil(res)
    assert.are.equal("EBODY: request body failed: EIO: input/output error", err)
    res, err, code = http.request{ url = base, method = "PUT", body = function() return 42 end }
    assert.is_nil(res)
    assert.are.equal("EBODY: request body gave a number (string or nil expected)", err)
    assert.are.equal(0, client.idle_count())
    assert.is_nil(got.body)
    support.wait_for(function() return support.open_fds() == before end, "the connections to close")
    srv:close()
  end)

  it("closes the connection of a task cancelled mid-upload", function()
    local received, closed = 0, false
    local srv = assert(tycho.net.listen{ port = 0, handler = function(conn)
      while true do
        local data = conn:read()
        if not data then break end
        received = received + #data
      end
      closed = true
    end })
    local before = support.open_fds()
    local pulled = 0
    collectgarbage("stop") -- the request must close it, not the collector
    local task = tycho.spawn(function()
      return http.request{ url = "http://127.0.0.1:" .. srv.port, method = "PUT",
        body = function()
          tycho.sleep(0)
          pulled = pulled + 1
          if pulled > 100000 then return nil end -- a bound; never reached
          return ("u"):rep(16384)
        end }
    end)
    support.wait_for(function() return received > 1024 * 1024 end, "1 MiB to arrive")
    task:cancel()
    assert.has_error(function() task:join() end, "task was cancelled")
    support.wait_for(function() return closed end, "the server to see the connection end")
    support.wait_for(function() return support.open_fds() == before end, "the descriptors to be released")
    collectgarbage("restart")
    assert.is_true(pulled < 100000)
    assert.are.equal(0, client.idle_count())
    srv:close()
  end)

  it("awaits the socket: the source runs at most a few MiB ahead of the server", function()
    -- The receiving socket gets a small fixed buffer (no autotuning), so
    -- what is in flight is bounded by the client's send buffer (4 MiB at
    -- most on Linux) and the client's write high-water mark.
    local received, gap = 0, 0
    local listener = uv.new_tcp()
    assert(listener:bind("127.0.0.1", 0))
    local peers = {}
    assert(listener:listen(8, function()
      local peer = uv.new_tcp()
      listener:accept(peer)
      uv.recv_buffer_size(peer, 65536)
      peers[#peers + 1] = peer
      peer:read_start(function(_, data)
        if data then received = received + #data end
      end)
    end))
    local port = listener:getsockname().port
    local total = 24 * 1024 * 1024
    local src = pieces(total // 65536, 65536)
    local next_piece = src.next
    local done = false
    local task = tycho.spawn(function()
      return http.request{ url = "http://127.0.0.1:" .. port, method = "PUT",
        headers = { ["Content-Length"] = total }, timeout = 60,
        body = function()
          gap = math.max(gap, src.pulled - received)
          local piece = next_piece()
          if not piece then done = true end
          return piece
        end }
    end)
    support.wait_for(function() return done end, "the whole body to be sent")
    task:cancel()
    pcall(task.join, task)
    for _, peer in ipairs(peers) do peer:close() end
    listener:close()
    assert.is_true(gap < 8 * 1024 * 1024, ("%d bytes ahead of the server"):format(gap))
    assert.is_true(received >= total - 8 * 1024 * 1024)
  end)

  it("returns a 307/308 instead of following it, since the body cannot be sent again", function()
    local srv, stats = raw_server(function(conn, req)
      local path = req.line:match("^%u+ (%S+)")
      if path == "/keep" then
        conn:write("HTTP/1.1 307 Temporary\r\nLocation: /other\r\nContent-Length: 4\r\n\r\nmove")
      elseif path == "/see" then
        conn:write("HTTP/1.1 303 See Other\r\nLocation: /other\r\nContent-Length: 0\r\n\r\n")
      else
        conn:write(ok_response(req.line .. " " .. tostring(req.headers["content-length"])))
      end
    end)
    local res = assert(http.request{ url = stats.url .. "/keep", method = "POST",
      body = pieces(1, 5).next, headers = { ["Content-Length"] = "5" }, follow_redirects = true })
    assert.are.equal(307, res.status)
    assert.are.equal("move", res.body)
    assert.are.equal("aaaaa", stats.requests[1].body)
    -- 303 asks for a GET without a body: followed, Content-Length dropped.
    res = assert(http.request{ url = stats.url .. "/see", method = "POST",
      body = pieces(1, 5).next, headers = { ["Content-Length"] = "5" }, follow_redirects = true })
    assert.are.equal(200, res.status)
    assert.are.equal("GET /other HTTP/1.1 nil", res.body)
    client.close_idle()
    srv:close()
  end)

  it("returns the answer of a server that stopped reading the upload", function()
    local srv = assert(tycho.net.listen{ port = 0, handler = function(conn)
      repeat local line = conn:read_line() until not line or line == ""
      conn:write("HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!")
    end })
    local n = 0
    local res = assert(http.request{ url = "http://127.0.0.1:" .. srv.port, method = "PUT",
      body = function()
        n = n + 1
        if n > 4096 then return nil end -- 256 MiB: a bound, never reached
        return ("b"):rep(65536)
      end })
    assert.are.equal(413, res.status)
    assert.are.equal("too big!", res.body)
    assert.is_true(n < 4096)
    assert.are.equal(0, client.idle_count())
    srv:close()
  end)
end)

describe("http client errors", function()
  it("refuses https:// with a clear message", function()
    local res, err, code = http.get("https://example.com/")
    assert.is_nil(res)
    assert.are.equal("ENOTSUP", code)
    assert.matches("https:// is not supported", err)
    assert.matches("http:// only", err)
  end)

  it("reports invalid URLs and refused connections", function()
    local res, err, code = http.get("not a url")
    assert.is_nil(res)
    assert.are.equal("EINVAL", code)
    assert.matches("invalid URL", err)
    local srv = assert(tycho.net.listen{ port = 0 })
    local port = srv.port
    srv:close()
    res, err, code = http.get("http://127.0.0.1:" .. port .. "/")
    assert.is_nil(res)
    assert.are.equal("ECONNREFUSED", code)
    assert.matches("127%.0%.0%.1:" .. port, err)
  end)

  it("parses URLs", function()
    local u = assert(client.parse_url("http://user:pw@[::1]:8080/a/b?c=d#frag"))
    assert.are.same({ host = "::1", port = 8080, target = "/a/b?c=d", authority = "[::1]:8080" }, u)
    u = assert(client.parse_url("HTTP://example.org?x"))
    assert.are.same({ host = "example.org", port = 80, target = "/?x", authority = "example.org" }, u)
    assert.is_nil(client.parse_url("http://host:99999/"))
    assert.is_nil(client.parse_url("ftp://host/"))
  end)

  it("names bad arguments", function()
    assert.has_error(function() http.request() end,
      "bad argument #1 to 'request' (table expected, got nil)")
    assert.has_error(function() http.request{ url = 42 } end,
      "bad argument #1 to 'request' (string expected, got number)")
    assert.has_error(function() http.get(nil) end,
      "bad argument #1 to 'get' (string expected, got nil)")
    assert.has_error(function()
      http.request{ url = "http://127.0.0.1/", headers = { ["X-Bad"] = "a\r\nInjected: 1" } }
    end, "bad argument #1 to 'request' (header 'X-Bad' contains CR, LF or NUL)")
    assert.has_error(function() http.request{ url = "http://127.0.0.1/", method = "GE T" } end,
      "bad argument #1 to 'request' (invalid method 'GE T')")
    assert.has_error(function() http.request{ url = "http://127.0.0.1/", body = 42 } end,
      "bad argument #1 to 'request' (body must be a string, a function or an object"
      .. " with a read method, got number)")
    assert.has_error(function() http.request{ url = "http://127.0.0.1/", body = {} } end,
      "bad argument #1 to 'request' (body must be a string, a function or an object"
      .. " with a read method, got table)")
    assert.has_error(function()
      http.request{ url = "http://127.0.0.1/", body = function() end, headers = { ["Content-Length"] = "ten" } }
    end, "bad argument #1 to 'request' (invalid Content-Length 'ten')")
  end)
end)

describe("the response parser", function()
  local rp = require "tycho.http.response_parser"

  it("parses a response fed one byte at a time and stops at its end", function()
    local p = rp.new()
    local text = "HTTP/1.0 201 Created\r\nContent-Length: 3\r\nX-Empty:\r\n\r\nabcHTTP/1.1"
    local consumed = 0
    for i = 1, #text do
      if p:done() then break end
      consumed = consumed + assert(p:execute(text:sub(i, i)))
    end
    assert.is_true(p:done())
    assert.are.equal(#text - #"HTTP/1.1", consumed)
    assert.are.same({ 201, "Created" }, { p:status() })
    assert.are.equal("1.0", p:version())
    assert.are.same({ "Content-Length", "3", "X-Empty", "" }, p:headers())
    assert.are.equal("abc", p:body())
    assert.are.equal("", p:body())
    assert.is_false(p:keep_alive()) -- HTTP/1.0 without keep-alive
    assert.has_error(function() p:execute("x") end, "response complete: call reset first")
    p:reset()
    assert.is_false(p:headers_done())
  end)

  it("ends a read-until-close body at finish and reports truncation", function()
    local p = rp.new()
    assert(p:execute("HTTP/1.1 200 OK\r\n\r\nsome"))
    assert.is_false(p:done())
    assert.is_true(p:finish())
    assert.are.equal("some", p:body())
    p:reset()
    assert(p:execute("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nsome"))
    local ok, err = p:finish()
    assert.is_nil(ok)
    assert.is_string(err)
  end)

  it("rejects bad limits", function()
    assert.has_error(function() rp.new{ max_header_bytes = 0 } end,
      "bad argument #1 to 'new' (limits must be positive)")
  end)
end)
