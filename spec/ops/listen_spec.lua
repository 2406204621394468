-- Specs for the listening options `--workers` builds on (src/http/server.c
-- and src/http/ops.c): SO_REUSEPORT sockets and inherited descriptors.
local tycho = require "tycho"
local ops = require "tycho.http.ops"
local client = require "tycho.http.client"

local function answering(name)
  return function() return name end
end

describe("listening for workers", function()
  it("lets two servers share a port with reuseport = true", function()
    local a = assert(tycho.http.serve { port = 0, reuseport = true, handler = answering("a") })
    local b = assert(tycho.http.serve { port = a.port, reuseport = true, handler = answering("b") })
    assert.equal(a.port, b.port)
    local seen = {}
    for _ = 1, 200 do -- the kernel hashes each new connection to one of them
      seen[assert(client.get("http://127.0.0.1:" .. a.port .. "/")).body] = true
      client.close_idle() -- a new connection each time
      if seen.a and seen.b then break end
    end
    assert.is_true(seen.a and seen.b)
    a:close()
    b:close()
    a:wait_closed()
    b:wait_closed()
  end)

  it("refuses a shared port without reuseport", function()
    local a = assert(tycho.http.serve { port = 0, reuseport = true, handler = answering("a") })
    local b, err, code = tycho.http.serve { port = a.port, handler = answering("b") }
    assert.is_nil(b)
    assert.equal("EADDRINUSE", code)
    assert.matches("listen on 127.0.0.1:" .. a.port, err, 1, true)
    a:close()
    a:wait_closed()
  end)

  it("serves on a bound socket handed over as fd; closing the server closes it", function()
    local fd, port = ops.reuseport_socket("127.0.0.1", 0)
    assert.is_true(port > 0)
    local s1 = assert(tycho.http.serve { port = 0, fd = fd, handler = answering("one") })
    assert.equal(port, s1.port)
    assert.equal("one", client.get("http://127.0.0.1:" .. port .. "/").body)
    client.close_idle()
    s1:close()
    s1:wait_closed()
    -- closing the server closed fd, the only socket on the port
    local r, err = client.get("http://127.0.0.1:" .. port .. "/")
    assert.is_nil(r)
    assert.matches("ECONNREFUSED", err)
  end)

  it("reuseport_socket returns nil, message, code on failure and raises on misuse", function()
    local fd, err, code = ops.reuseport_socket("not an address", 80)
    assert.is_nil(fd)
    assert.equal("EINVAL", code)
    assert.matches("bind not an address:80", err, 1, true)
    assert.has_error(function() ops.reuseport_socket("127.0.0.1", 70000) end,
      "bad argument #2 to 'reuseport_socket' (port must be 0-65535)")
  end)
end)
