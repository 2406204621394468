-- Specs for response compression (src/http/compress.c and its hooks in
-- src/http/message.c): a real server on 127.0.0.1 port 0, asked with the
-- Tycho client in raw mode (decompress = false) so the bytes on the wire are
-- checked, and decoded here with tycho.zlib.
local tycho = require "tycho"
local http = require "tycho.http"
local zlib = require "tycho.zlib"
local core = require "tycho.core"
local net = require "spec.support.net"

local BIG = string.rep("compress me, I am a line of text\n", 100) -- 3300 bytes

-- Serves handler with the server options opts; returns the base URL and
-- the server (close it).
local function serve(handler, opts)
  local o = { port = 0, handler = handler }
  for k, v in pairs(opts or {}) do o[k] = v end
  local server = assert(http.serve(o))
  return ("http://127.0.0.1:%d"):format(server.port), server
end

-- GET (or method) with Accept-Encoding ae (nil: none), raw bytes back.
local function fetch(url, ae, method, extra)
  local headers = { ["Accept-Encoding"] = ae }
  for k, v in pairs(extra or {}) do headers[k] = v end
  return assert(http.request { url = url, method = method, headers = headers, decompress = false })
end

-- A latch a handler parks on until the spec opens it.
local function latch()
  local l = {}
  function l.wait()
    local co, tok = core.token()
    l.co, l.tok = co, tok
    return core.park()
  end
  function l.open()
    net.wait_for(function() return l.co ~= nil end, "the handler to park")
    core.wake(l.co, l.tok)
  end
  return l
end

describe("response compression", function()
  local url, server
  local last_done -- set by handlers that signal their end
  local gate

  setup(function()
    local app = http.router()
    app:get("/big", function() return BIG end)
    app:get("/json", function(_, res)
      local t = {}
      for i = 1, 200 do t[i] = { id = i, name = "item " .. i } end
      res:json(t)
    end)
    app:get("/small", function(_, res) res:send("tiny") end)
    app:get("/png", function(_, res) res:header("Content-Type", "image/png"):send(BIG) end)
    app:get("/svg", function(_, res) res:header("Content-Type", "image/svg+xml; charset=utf-8"):send(BIG) end)
    app:get("/off", function(_, res) res:compress(false):send(BIG) end)
    app:get("/encoded", function(_, res)
      res:header("Content-Encoding", "br"):send(BIG)
    end)
    app:get("/etag", function(_, res) res:header("ETag", '"v1"'):send(BIG) end)
    app:get("/vary", function(_, res) res:header("Vary", "Cookie"):send(BIG) end)
    app:get("/partial", function(_, res) res:status(206):header("Content-Range", "bytes 0-3299/9999"):send(BIG) end)
    app:get("/nocontent", function(_, res) res:status(204):send("") end)
    app:get("/length", function(_, res)
      res:header("Content-Length", #BIG)
      res:write(BIG:sub(1, 1000))
      res:finish(BIG:sub(1001))
    end)
    app:get("/stream", function(_, res)
      res:write("first piece\n")
      gate.wait()
      res:write("second piece\n")
      res:finish("last piece\n")
    end)
    app:get("/sse", function(_, res)
      local s = res:sse { heartbeat = false }
      s:send { id = 1, data = "one" }
      gate.wait()
      s:send { id = 2, data = "two" }
      s:close()
    end)
    app:get("/forever", function(_, res)
      local _ <close> = setmetatable({}, { __close = function() last_done = true end })
      for i = 1, 1e6 do
        res:write(("line %d\n"):format(i))
        tycho.sleep(0.001)
      end
    end)
    url, server = serve(app, { compression = true })
  end)

  teardown(function() server:close(true) end)
  before_each(function() gate, last_done = latch(), false end)

  it("gzips a text body above 1 KB for a client that accepts gzip", function()
    local r = fetch(url .. "/big", "gzip, deflate")
    assert.are.equal(200, r.status)
    assert.are.equal("gzip", r.headers["content-encoding"])
    assert.are.equal("Accept-Encoding", r.headers["vary"])
    assert.are.equal(tostring(#r.body), r.headers["content-length"])
    assert.is_true(#r.body < #BIG / 5)
    assert.are.equal(BIG, zlib.gunzip(r.body))
  end)

  it("gzips res:json answers", function()
    local r = fetch(url .. "/json", "gzip")
    assert.are.equal("gzip", r.headers["content-encoding"])
    assert.are.equal("application/json", r.headers["content-type"])
    assert.are.equal("item 200", tycho.json.decode(zlib.gunzip(r.body))[200].name)
  end)

  it("follows Accept-Encoding and its q-values", function()
    local cases = {
      [""] = false, ["gzip"] = true, ["GZip"] = true, ["x-gzip"] = true,
      ["deflate, gzip;q=0.5"] = true, ["gzip;q=0"] = false, ["gzip; q=0.000"] = false,
      ["gzip;q=0.001"] = true, ["*"] = true, ["br, *;q=0.1"] = true,
      ["*;q=0"] = false, ["gzip;q=0, *"] = false, ["*;q=0, gzip"] = true,
      ["identity"] = false, ["br"] = false, ["gzipx"] = false,
    }
    for ae, want in pairs(cases) do
      local r = fetch(url .. "/big", ae ~= "" and ae or nil)
      assert.are.equal(want and "gzip" or nil, r.headers["content-encoding"], ae)
      assert.are.equal(BIG, want and zlib.gunzip(r.body) or r.body, ae)
      -- Vary either way: the answer depends on the header
      assert.are.equal("Accept-Encoding", r.headers["vary"], ae)
    end
  end)

  it("leaves identity answers without Vary when they would never be gzipped", function()
    for _, path in ipairs({ "/small", "/png", "/off", "/nocontent", "/partial" }) do
      local r = fetch(url .. path, "gzip")
      assert.is_nil(r.headers["content-encoding"], path)
      assert.is_nil(r.headers["vary"], path)
    end
    assert.are.equal("tiny", fetch(url .. "/small", "gzip").body)
    assert.are.equal(BIG, fetch(url .. "/partial", "gzip").body)
  end)

  it("gzips listed types with parameters (image/svg+xml; charset)", function()
    local r = fetch(url .. "/svg", "gzip")
    assert.are.equal("gzip", r.headers["content-encoding"])
    assert.are.equal(BIG, zlib.gunzip(r.body))
  end)

  it("keeps a handler's own Content-Encoding and Content-Length", function()
    local r = fetch(url .. "/encoded", "gzip")
    assert.are.equal("br", r.headers["content-encoding"])
    assert.are.equal(BIG, r.body)
    r = fetch(url .. "/length", "gzip")
    assert.is_nil(r.headers["content-encoding"])
    assert.are.equal(tostring(#BIG), r.headers["content-length"])
    assert.are.equal(BIG, r.body)
  end)

  it("answers HEAD as identity, with GET's length", function()
    local r = fetch(url .. "/big", "gzip", "HEAD")
    assert.is_nil(r.headers["content-encoding"])
    assert.are.equal(tostring(#BIG), r.headers["content-length"])
  end)

  it("makes a strong ETag weak and adds to an existing Vary", function()
    local r = fetch(url .. "/etag", "gzip")
    assert.are.equal('W/"v1"', r.headers["etag"])
    assert.are.equal('"v1"', fetch(url .. "/etag", nil).headers["etag"])
    r = fetch(url .. "/vary", "gzip")
    assert.are.equal("Cookie, Accept-Encoding", r.headers["vary"])
  end)

  it("streams res:write chunked, each write decodable on arrival", function()
    local r = assert(http.request { url = url .. "/stream", stream = true, decompress = false,
      headers = { ["Accept-Encoding"] = "gzip" } })
    assert.are.equal("gzip", r.headers["content-encoding"])
    assert.are.equal("chunked", r.headers["transfer-encoding"])
    assert.is_nil(r.headers["content-length"])
    local dec = zlib.stream("gunzip")
    -- the handler is parked: what arrived is all there is so far
    local got = ""
    while got == "" do got = got .. assert(dec:update(assert(r:read()))) end
    assert.are.equal("first piece\n", got)
    gate.open()
    local rest = {}
    for piece in r:chunks() do rest[#rest + 1] = assert(dec:update(piece)) end
    rest[#rest + 1] = assert(dec:finish())
    assert.are.equal("second piece\nlast piece\n", table.concat(rest))
  end)

  it("flushes each SSE event at once", function()
    local r = assert(http.request { url = url .. "/sse", stream = true, decompress = true,
      headers = { ["Accept-Encoding"] = "gzip" } })
    assert.are.equal("gzip", r.content_encoding)
    local seen = ""
    while not seen:find("data: one\n\n", 1, true) do seen = seen .. assert(r:read()) end
    assert.are.equal(": stream\n\nid: 1\ndata: one\n\n", seen)
    gate.open()
    assert.are.equal("id: 2\ndata: two\n\n", r:read_all())
  end)

  it("frees a stream's state when the client goes away mid-stream", function()
    local r = assert(http.request { url = url .. "/forever", stream = true, decompress = true,
      headers = { ["Accept-Encoding"] = "gzip" } })
    assert.matches("^line 1\n", assert(r:read()))
    r:close()
    net.wait_for(function() return last_done end, "the handler to be cancelled")
  end)

  it("decodes in the Tycho client by default", function()
    local r = assert(http.get(url .. "/big"))
    assert.are.equal(BIG, r.body)
    assert.are.equal("gzip", r.content_encoding)
    assert.is_nil(r.headers["content-encoding"])
    assert.is_nil(r.headers["content-length"])
    local wire = {}
    for i = 1, #r.raw_headers, 2 do wire[r.raw_headers[i]:lower()] = r.raw_headers[i + 1] end
    assert.are.equal("gzip", wire["content-encoding"])
    local v, err, code = http.get(url .. "/big", { max_body = 1000 })
    assert.is_nil(v)
    assert.are.equal("ETOOLARGE", code)
    assert.matches("decompressed", err)
  end)

  it("gives a caller who sets Accept-Encoding the bytes as sent (as Go does)", function()
    local r = assert(http.get(url .. "/big", { headers = { ["accept-encoding"] = "gzip" } }))
    assert.are.equal("gzip", r.headers["content-encoding"])
    assert.is_nil(r.content_encoding)
    assert.are.equal(BIG, zlib.gunzip(r.body))
    r = assert(http.get(url .. "/big", { decompress = true, headers = { ["Accept-Encoding"] = "gzip" } }))
    assert.are.equal(BIG, r.body)
    assert.are.equal("gzip", r.content_encoding)
  end)
end)

describe("compression options", function()
  it("is off by default and takes level, min_length and types", function()
    local function app(_, res)
      res:header("Content-Type", "application/x-custom")
      res:send(BIG)
    end
    local url, server = serve(app)
    assert.is_nil(fetch(url, "gzip").headers["content-encoding"])
    server:close(true)
    url, server = serve(app, { compression = { types = { "application/x-custom" }, level = 1 } })
    local r = fetch(url, "gzip")
    assert.are.equal("gzip", r.headers["content-encoding"])
    assert.are.equal(BIG, zlib.gunzip(r.body))
    server:close(true)
    url, server = serve(function() return "short" end, { compression = { min_length = 0 } })
    assert.are.equal("short", zlib.gunzip(fetch(url, "gzip").body))
    server:close(true)
  end)

  it("res:compress(true) gzips on a server without compression", function()
    local url, server = serve(function(_, res)
      res:header("Content-Type", "image/png"):compress(true):send("small")
    end)
    local r = fetch(url, "gzip")
    assert.are.equal("gzip", r.headers["content-encoding"])
    assert.are.equal("small", zlib.gunzip(r.body))
    assert.are.equal("small", fetch(url, nil).body)
    server:close(true)
  end)

  it("leaves files sent by tycho.http.static alone", function()
    local dir = net.tmpdir("gzip")
    local f = assert(io.open(dir .. "/a.txt", "w"))
    f:write(BIG)
    f:close()
    local url, server = serve(http.static(dir), { compression = true })
    local r = fetch(url .. "/a.txt", "gzip")
    assert.are.equal(200, r.status)
    assert.is_nil(r.headers["content-encoding"])
    assert.are.equal(BIG, r.body)
    server:close(true)
    net.rmdir(dir)
  end)

  it("reads compression.types once, whatever an __index answers later", function()
    -- An options table may compute its fields: the list checked and sized
    -- must be the list copied (a longer second answer overflowed the copy).
    local reads = 0
    local opts = setmetatable({}, { __index = function(_, k)
      if k ~= "types" then return nil end
      reads = reads + 1
      return reads == 1 and { "text/a" } or { "text/" .. ("b"):rep(200) }
    end })
    local url, server = serve(function(_, res)
      res:header("Content-Type", "text/a"):send(BIG)
    end, { compression = opts })
    local r = fetch(url, "gzip")
    assert.are.equal("gzip", r.headers["content-encoding"])
    assert.are.equal(BIG, zlib.gunzip(r.body))
    server:close(true)
  end)

  it("raises for bad options, naming them", function()
    local h = function() return "" end
    assert.has_error(function() http.serve { port = 0, handler = h, compression = 5 } end,
      "bad option 'compression' to 'serve' (boolean or table expected, got number)")
    assert.has_error(function() http.serve { port = 0, handler = h, compression = { level = 12 } } end,
      "bad option 'compression.level' to 'serve' (integer 1-9 expected)")
    assert.has_error(function() http.serve { port = 0, handler = h, compression = { min_length = -1 } } end,
      "bad option 'compression.min_length' to 'serve' (integer 0-2147483647 expected)")
    assert.has_error(function() http.serve { port = 0, handler = h, compression = { types = { 1 } } } end,
      "bad option 'compression.types' to 'serve' (entry 1 is not a media type string)")
    local r = tycho.test.request(function(_, res)
      local _, err = pcall(function() res:compress("yes") end)
      res:send(err)
    end)
    assert.matches("bad argument #1 to 'compress' (boolean expected, got string)", r.body, 1, true)
  end)
end)
