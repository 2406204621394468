-- Specs for WebSocket (src/http/websocket.c, lua/tycho/ws.lua, the router's
-- app:websocket): SHA-1/base64/UTF-8 helpers against published vectors,
-- then Tycho's server and client talking to each other over real sockets.
local tycho = require "tycho"
local http = require "tycho.http"
local wscore = require "tycho.http.websocket"
local support = require "spec.support.net"

local function hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

describe("SHA-1 and base64", function()
  it("matches the FIPS 180 examples", function()
    assert.equal("da39a3ee5e6b4b0d3255bfef95601890afd80709", hex(wscore.sha1("")))
    assert.equal("a9993e364706816aba3e25717850c26c9cd0d89d", hex(wscore.sha1("abc")))
    assert.equal("84983e441c3bd26ebaae4aa1f95129e5e54670f1",
      hex(wscore.sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")))
    assert.equal("34aa973cd4c4daa4f61eeb2bdbad27316534016f", hex(wscore.sha1(("a"):rep(1000000))))
  end)

  it("pads at every length around the block boundary", function()
    -- 55, 56 and 64 bytes take different padding paths
    assert.equal("c1c8bbdc22796e28c0e15163d20899b65621d65a", hex(wscore.sha1(("a"):rep(55))))
    assert.equal("c2db330f6083854c99d4b5bfb6e8f29f201be699", hex(wscore.sha1(("a"):rep(56))))
    assert.equal("0098ba824b5c16427bd7a1122a5a442a25ec644d", hex(wscore.sha1(("a"):rep(64))))
  end)

  it("encodes base64 like RFC 4648", function()
    local cases = { [""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==",
      fooba = "Zm9vYmE=", foobar = "Zm9vYmFy", ["\255\254\253"] = "//79" }
    for input, out in pairs(cases) do assert.equal(out, wscore.base64(input)) end
  end)

  it("computes the accept key of RFC 6455's example", function()
    assert.equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", tycho.ws.accept_key("dGhlIHNhbXBsZSBub25jZQ=="))
  end)
end)

describe("UTF-8 validation", function()
  local valid = { "", "ascii", "h\195\169llo", "\226\130\172", "\240\159\152\128",
    "\239\191\191", "\244\143\191\191", "\0" }
  local invalid = { "\128", "\192\175", "\193\191", "\224\128\175", "\237\160\128",
    "\244\144\128\128", "\245\128\128\128", "\255", "\226\130", "\240\159\152",
    "a\195" }
  it("accepts shortest forms up to U+10FFFF", function()
    for _, s in ipairs(valid) do assert.is_true(wscore.utf8_valid(s), hex(s)) end
  end)
  it("rejects overlongs, surrogates, truncations and bytes out of range", function()
    for _, s in ipairs(invalid) do assert.is_false(wscore.utf8_valid(s), hex(s)) end
  end)
end)

-- A server with the routes the specs use; returns server, base URL, log.
local function start(opts)
  local log = { closes = {}, errors = 0 }
  local app = http.router()
  app:websocket("/echo", function(ws)
    while true do
      local data, kind, code, reason = ws:receive()
      if not data then
        log.closes[#log.closes + 1] = { code, reason }
        return
      end
      ws:send(data, kind)
    end
  end, opts)
  app:websocket("/return", function(ws) ws:send("bye") end)
  app:websocket("/fail", function(ws)
    ws:send("about to fail")
    error("handler blew up")
  end)
  app:websocket("/hold", function(ws)
    local _, _, code = ws:receive()
    log.closes[#log.closes + 1] = { code }
  end)
  app:get("/plain", function() return "not a websocket" end)
  local srv = assert(http.serve { port = 0, handler = app })
  return srv, "ws://127.0.0.1:" .. srv.port, log
end

local function stop(srv)
  srv:close()
  srv:wait_closed()
end

describe("WebSocket server and client", function()
  it("echoes text and binary, in order", function()
    local srv, base = start()
    local ws = assert(tycho.ws.connect(base .. "/echo"))
    assert.equal("open", ws.state)
    for i = 1, 50 do assert.is_true(ws:send("m" .. i)) end
    for i = 1, 50 do assert.same({ "m" .. i, "text" }, { ws:receive() }) end
    assert.is_true(ws:send("\0\255", "binary"))
    assert.same({ "\0\255", "binary" }, { ws:receive() })
    local big = ("x"):rep(3 * 1024 * 1024)
    assert.is_true(ws:send(big, "binary")) -- waits on back-pressure
    assert.equal(#big, #ws:receive())
    assert.is_true(ws:close())
    assert.equal("closed", ws.state)
    stop(srv)
  end)

  it("reports close codes both ways", function()
    local srv, base, log = start()
    local ws = assert(tycho.ws.connect(base .. "/echo"))
    assert.is_true(ws:close(4321, "spec done"))
    assert.same({ nil, "closed", 4321, "" }, { ws:receive() })
    support.wait_for(function() return #log.closes == 1 end, "the handler's close")
    assert.same({ 4321, "spec done" }, log.closes[1])
    assert.same({ nil, "closed", 4321, "" }, { ws:send("late") })
    stop(srv)
  end)

  it("closes with 1000 when the handler returns and 1011 when it fails", function()
    local srv, base = start()
    local ws = assert(tycho.ws.connect(base .. "/return"))
    assert.equal("bye", ws:receive())
    assert.same({ nil, "closed", 1000, "" }, { ws:receive() })
    ws = assert(tycho.ws.connect(base .. "/fail"))
    assert.equal("about to fail", ws:receive())
    assert.same({ nil, "closed", 1011, "internal error" }, { ws:receive() })
    stop(srv)
  end)

  it("measures a ping's round trip", function()
    local srv, base = start()
    local ws = assert(tycho.ws.connect(base .. "/echo"))
    local rtt = ws:ping("hi")
    assert.is_number(rtt)
    assert.is_true(rtt >= 0 and rtt < 5)
    ws:close()
    stop(srv)
  end)

  it("enforces max_message on both sides (1009)", function()
    local srv, base = start { max_message = 1000 }
    local ws = assert(tycho.ws.connect(base .. "/echo"))
    assert.is_true(ws:send(("a"):rep(1000)))
    assert.equal(1000, #ws:receive())
    ws:send(("a"):rep(1001))
    assert.same({ nil, "closed", 1009, "message too big" }, { ws:receive() })
    -- the client's own limit
    local small = assert(tycho.ws.connect("ws://127.0.0.1:" .. srv.port .. "/echo", { max_message = 10 }))
    small:send(("b"):rep(11))
    local _, what, code = small:receive()
    assert.same({ "closed", 1009 }, { what, code })
    stop(srv)
  end)

  it("sends 1001 to open websockets when the server closes", function()
    local srv, base, log = start()
    local ws = assert(tycho.ws.connect(base .. "/hold"))
    assert.is_true(ws:ping() ~= nil)
    srv:close()
    assert.same({ nil, "closed", 1001, "server closing" }, { ws:receive() })
    srv:wait_closed()
    assert.same({ 1001 }, log.closes[1])
    assert.equal(0, srv.connections)
  end)

  it("refuses what is not a websocket handshake", function()
    local srv, base = start()
    local ws, err, code = tycho.ws.connect(base .. "/plain")
    assert.is_nil(ws)
    assert.matches("handshake refused: HTTP/1.1 200", err)
    assert.equal("EPROTO", code)
    local res = assert(http.get("http://127.0.0.1:" .. srv.port .. "/echo"))
    assert.equal(426, res.status)
    assert.equal("13", res.headers["sec-websocket-version"])
    stop(srv)
  end)

  it("times out a server that never answers the handshake", function()
    local silent = assert(tycho.net.listen { port = 0, handler = function(conn)
      conn:read() -- reads the request, never answers; the second read
      conn:read() -- ends when the client gives up and closes
    end })
    local t0 = tycho.now()
    local ws, err, code = tycho.ws.connect("ws://127.0.0.1:" .. silent.port .. "/", { timeout = 0.2 })
    assert.is_nil(ws)
    assert.equal("ETIMEDOUT", code)
    assert.matches("ETIMEDOUT", err)
    assert.is_true(tycho.now() - t0 < 3000) -- milliseconds
    silent:close()
  end)

  -- A peer that answers the handshake, then never answers: with read, it
  -- reads until our close frame (and hangs up); without, it never reads
  -- again but sends a text frame every 50 ms (so we are not idle).
  local function mute_peer(read)
    return assert(tycho.net.listen { port = 0, handler = function(conn)
      local head = ""
      while not head:find("\r\n\r\n", 1, true) do head = head .. assert(conn:read()) end
      local key = head:match("[Ss]ec%-[Ww]eb[Ss]ocket%-[Kk]ey: *([^\r]+)")
      conn:write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        .. "Connection: Upgrade\r\nSec-WebSocket-Accept: " .. tycho.ws.accept_key(key) .. "\r\n\r\n")
      if read then
        -- Walk the client's frames (always masked) until a close frame: a
        -- byte search would also match 0x88 inside a masked payload.
        local buf = ""
        local function need(n)
          while #buf < n do
            local data = conn:read()
            if not data then return false end
            buf = buf .. data
          end
          return true
        end
        while need(2) do
          local opcode, len = buf:byte(1) & 0x0f, buf:byte(2) & 0x7f
          local head_len = 2 + (len == 126 and 2 or len == 127 and 8 or 0)
          if not need(head_len) then return end
          if len == 126 then len = string.unpack(">I2", buf, 3)
          elseif len == 127 then len = string.unpack(">I8", buf, 3) end
          if not need(head_len + 4 + len) then return end
          buf = buf:sub(head_len + 4 + len + 1)
          if opcode == 8 then return end
        end
      else
        for _ = 1, 200 do
          if not conn:write("\129\4tick") then return end
          tycho.sleep(0.05)
        end
      end
    end })
  end

  it("gives up on a ping nobody answers", function()
    local peer = mute_peer(true)
    local ws = assert(tycho.ws.connect("ws://127.0.0.1:" .. peer.port .. "/"))
    local t0 = tycho.now()
    assert.same({ nil, "timeout" }, { ws:ping("anyone?", 0.1) })
    assert.is_true(tycho.now() - t0 < 3000)
    assert.has_error(function() ws:ping("x", 0) end, "bad argument #2 to 'ping' (timeout must be positive)")
    assert.is_true(ws:close())
    peer:close()
  end)

  it("drops a peer that stops reading our output (idle_timeout)", function()
    local peer = mute_peer(false)
    local ws = assert(tycho.ws.connect("ws://127.0.0.1:" .. peer.port .. "/",
      { idle_timeout = 0.3, ping_interval = 0 }))
    local chunk = ("z"):rep(1024 * 1024)
    local result
    for _ = 1, 200 do -- the kernel buffers fill; then send waits, then fails
      result = { ws:send(chunk, "binary") }
      if not result[1] then break end
    end
    assert.same({ nil, "closed", 1006, "peer stopped reading" }, result)
    peer:close()
  end)

  it("returns connection errors", function()
    local ws, _, code = tycho.ws.connect("ws://127.0.0.1:1/")
    assert.is_nil(ws)
    assert.equal("ECONNREFUSED", code)
    local _, err = tycho.ws.connect("wss://example.org/")
    assert.matches("TLS", err)
  end)

  it("raises on misuse", function()
    local srv, base = start()
    local ws = assert(tycho.ws.connect(base .. "/echo"))
    assert.has_error(function() ws:send("\255", "text") end,
      "bad argument #1 to 'send' (text is not valid UTF-8 (send it as \"binary\"))")
    assert.has_error(function() ws:send("x", "json") end)
    assert.has_error(function() ws:send() end)
    assert.has_error(function() ws:close(1005) end, "bad argument #1 to 'close' (invalid close code)")
    assert.has_error(function() ws:close(1000, ("r"):rep(124)) end)
    assert.has_error(function() ws:ping(("p"):rep(126)) end)
    assert.has_error(function() tycho.ws.connect(42) end,
      "bad argument #1 to 'connect' (string expected, got number)")
    local started = false
    local other = tycho.spawn(function()
      started = true -- runs on to its park in receive without yielding before
      return ws:receive()
    end)
    support.wait_for(function() return started end, "the other task")
    assert.has_error(function() ws:receive() end, "another task is already in ws:receive()")
    ws:send("for the other task")
    assert.same({ "for the other task", "text" }, { other:join() })
    ws:close()
    stop(srv)
  end)

  it("keeps user fields on the object", function()
    local srv, base = start()
    local ws = assert(tycho.ws.connect(base .. "/echo"))
    ws.name = "alice"
    assert.equal("alice", ws.name)
    assert.is_nil(ws.protocol)
    assert.matches("^websocket %(open%)$", tostring(ws))
    ws:close()
    stop(srv)
  end)

  it("leaves no file descriptors behind", function()
    local srv, base = start()
    local before = support.open_fds()
    for _ = 1, 20 do
      local ws = assert(tycho.ws.connect(base .. "/echo"))
      ws:send("x")
      ws:receive()
      ws:close()
    end
    support.wait_for(function() return srv.connections == 0 end, "server connections to close")
    support.wait_for(function() return support.open_fds() == before end, "fds to close")
    stop(srv)
  end)
end)
