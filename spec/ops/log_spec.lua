-- Specs for lua/tycho/log.lua: error log levels and format, access log
-- lines written by a real server (server:set_log, src/http/ops.c).
local tycho = require "tycho"
local log = require "tycho.log"
local client = require "tycho.http.client"

local function tmpname()
  local p = os.tmpname()
  os.remove(p)
  return p
end

local function read(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

describe("tycho.log levels", function()
  after_each(function() log.set_level("info") end)

  it("accepts the four levels and refuses others with a message", function()
    for _, l in ipairs { "debug", "info", "warn", "error" } do
      assert.is_true(log.set_level(l))
      assert.equal(l, log.level())
    end
    local ok, err = log.set_level("loud")
    assert.is_nil(ok)
    assert.matches("unknown log level 'loud'", err)
    assert.equal("error", log.level())
  end)

  it("raises on a non-string level", function()
    assert.has_error(function() log.set_level(3) end,
      "bad argument #1 to 'set_level' (string expected, got number)")
  end)

  it("formats lines with an ISO UTC timestamp, the level and the source", function()
    log.set_source("worker 2")
    local line = log.format("warn", "hello")
    log.set_source(nil)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ warn %[worker 2%] hello\n$", line)
    assert.matches("^%S+ error oops\n$", log.format("error", "oops"))
  end)
end)

describe("tycho.log access lines", function()
  it("writes the Common Log Format with latency, generation and worker", function()
    local line = log.access_line("10.0.0.1", "GET", "/a?b=1", 1, 404, 12, 1500000, 3, 2)
    assert.matches('^10%.0%.0%.1 %- %- %[%d%d/%a%a%a/%d%d%d%d:%d%d:%d%d:%d%d %+0000%] '
      .. '"GET /a%?b=1 HTTP/1%.1" 404 12 0%.001500 gen=3 worker=2\n$', line)
  end)

  it("escapes quotes and control bytes in the URL", function()
    local line = log.access_line("1.2.3.4", "GET", '/x"y\1', 0, 200, 0, 0, 1)
    assert.matches('"GET /x\\x22y\\x01 HTTP/1.0"', line, 1, true)
    assert.matches("worker=0", line, 1, true)
  end)

  it("logs every response of a real server, including errors, then stops", function()
    local path = tmpname()
    local server = assert(tycho.http.serve { port = 0, handler = function(req, res)
      if req.path == "/boom" then error("boom") end
      res:status(req.path == "/missing" and 404 or 200)
      res:send("body!")
    end })
    local alog = assert(log.access(server, path, 7))
    local base = "http://127.0.0.1:" .. server.port
    assert.equal(200, assert(client.get(base .. "/ok?q=1")).status)
    assert.equal(404, assert(client.get(base .. "/missing")).status)
    assert.equal(500, assert(client.get(base .. "/boom")).status)
    alog.flush()
    local text = read(path)
    local lines = {}
    for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal(3, #lines)
    assert.matches('"GET /ok%?q=1 HTTP/1%.1" 200 5 %d+%.%d+ gen=1 worker=7$', lines[1])
    assert.matches('"GET /missing HTTP/1%.1" 404 5 ', lines[2])
    assert.matches('"GET /boom HTTP/1%.1" 500 22 ', lines[3])
    alog.close()
    assert.equal(200, assert(client.get(base .. "/after")).status)
    assert.equal(text, read(path)) -- closed: nothing more written
    server:close()
    server:wait_closed()
    os.remove(path)
  end)

  it("raises on misuse", function()
    assert.has_error(function() log.access({}, "x.log") end,
      "bad argument #1 to 'access' (http server expected, got table)")
    local server = assert(tycho.http.serve { port = 0, handler = function() return "x" end })
    assert.has_error(function() log.access(server, 5) end,
      "bad argument #2 to 'access' (string expected, got number)")
    server:close()
    server:wait_closed()
  end)

  it("returns nil and a message for a file it cannot open", function()
    local server = assert(tycho.http.serve { port = 0, handler = function() return "x" end })
    local alog, err = log.access(server, "/nonexistent-dir/access.log")
    assert.is_nil(alog)
    assert.matches("No such file or directory", err)
    server:close()
    server:wait_closed()
  end)
end)
