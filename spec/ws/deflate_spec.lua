-- Specs for permessage-deflate (RFC 7692: src/http/ws_deflate.c, its
-- framing in src/http/websocket.c, the negotiation in lua/tycho/ws.lua):
-- the permessage_deflate option of req:websocket / app:websocket and
-- tycho.ws.connect, between Tycho's own server and client over real
-- sockets. The wire format is checked against other implementations and
-- raw frames in tests/e2e/test_ws_deflate*.py.
local tycho = require "tycho"
local http = require "tycho.http"
local support = require "spec.support.net"

-- An echo server whose route takes `pmd` as its permessage_deflate option;
-- /misuse reports what req:websocket raised for the option in ?case=.
local BAD = {
  word = "yes",
  level = { level = 10 },
  bits = { max_window_bits = 7 },
  float = { threshold = 1.5 },
  unknown = { window = 9 },
  flag = { server_no_context_takeover = "no" },
}

local function start(pmd, max_message)
  local log = { closes = {}, misuse = {} }
  local app = http.router()
  app:websocket("/echo", function(ws)
    log.extensions = ws.extensions
    while true do
      local data, kind, code = ws:receive()
      if not data then
        log.closes[#log.closes + 1] = code
        return
      end
      ws:send(data, kind)
    end
  end, { permessage_deflate = pmd, max_message = max_message })
  app:get("/misuse", function(req)
    local case = req.query.case
    local ok, err = pcall(function()
      local ws = req:websocket { permessage_deflate = BAD[case] }
      return ws
    end)
    log.misuse[case] = not ok and err or "no error"
    return "checked"
  end)
  local srv = assert(http.serve { port = 0, handler = app })
  return srv, "ws://127.0.0.1:" .. srv.port, log
end

local function stop(srv) srv:close(); return srv:wait_closed() end

-- Text that compresses well but not trivially.
local function corpus(n)
  local words, out = { "alpha", "beta", "gamma", "delta", "tycho", "brahe", "uraniborg" }, {}
  for i = 1, n do out[i] = words[(i * 7 + i // 3) % #words + 1] .. i % 97 end
  return table.concat(out, " ")
end

describe("permessage-deflate option", function()
  it("is off on the server by default and on for the client, like Node's ws", function()
    local srv, base, log = start(nil)
    local ws = assert(tycho.ws.connect(base .. "/echo"))
    assert.is_nil(ws.extensions)
    ws:send("x")
    assert.equal("x", ws:receive())
    assert.is_nil(log.extensions)
    ws:close()
    stop(srv)
  end)

  it("negotiates when both sides want it, and not when the client says false", function()
    local srv, base, log = start(true)
    local ws = assert(tycho.ws.connect(base .. "/echo"))
    assert.equal("permessage-deflate", ws.extensions)
    ws:send("x")
    assert.equal("x", ws:receive())
    assert.equal("permessage-deflate", log.extensions)
    ws:close()
    local plain = assert(tycho.ws.connect(base .. "/echo", { permessage_deflate = false }))
    assert.is_nil(plain.extensions)
    plain:send("y")
    assert.equal("y", plain:receive())
    support.wait_for(function() return log.extensions == nil end, "the second handler")
    plain:close()
    stop(srv)
  end)

  it("round-trips small, large, binary and empty messages in order", function()
    local srv, base = start { threshold = 0 }
    local ws = assert(tycho.ws.connect(base .. "/echo"))
    local msgs = { "", "", "a", "", corpus(20000), ("\0\1\2\255"):rep(5000), corpus(300),
      ("z"):rep(2 * 1024 * 1024), "grüße ✓" }
    for i, m in ipairs(msgs) do
      assert.is_true(ws:send(m, i == 6 and "binary" or "text"))
    end
    for i, m in ipairs(msgs) do
      local data, kind = ws:receive()
      assert.equal(#m, #data)
      assert.is_true(data == m, "message " .. i)
      assert.equal(i == 6 and "binary" or "text", kind)
    end
    ws:close()
    stop(srv)
  end)

  it("works with every window size and with context takeover on and off", function()
    for bits = 8, 15 do
      for _, nct in ipairs { false, true } do
        local srv, base, log = start { max_window_bits = bits, server_no_context_takeover = nct,
          client_no_context_takeover = nct, threshold = 0 }
        local ws = assert(tycho.ws.connect(base .. "/echo", {
          permessage_deflate = { max_window_bits = bits, threshold = 0 } }))
        local want = "permessage-deflate"
        if nct then want = want .. "; server_no_context_takeover; client_no_context_takeover" end
        if bits < 15 then
          want = want .. ("; server_max_window_bits=%d; client_max_window_bits=%d"):format(bits, bits)
        end
        assert.equal(want, ws.extensions)
        assert.equal(want, log.extensions)
        local text = corpus(3000)
        for round = 1, 3 do -- the same text again: takeover finds it in the window
          assert.is_true(ws:send(text .. round))
          assert.is_true(ws:receive() == text .. round, ("bits %d nct %s"):format(bits, nct))
        end
        ws:close()
        stop(srv)
      end
    end
  end)

  it("asks for the server's context and window when the client is configured so", function()
    local srv, base = start(true)
    local ws = assert(tycho.ws.connect(base .. "/echo", { permessage_deflate = {
      server_no_context_takeover = true, max_window_bits = 10, level = 1 } }))
    assert.equal("permessage-deflate; server_no_context_takeover; "
      .. "server_max_window_bits=10; client_max_window_bits=10", ws.extensions)
    local text = corpus(5000)
    ws:send(text)
    assert.is_true(ws:receive() == text)
    ws:close()
    stop(srv)
  end)

  it("limits the inflated size with max_message (1009)", function()
    local srv, base, log = start(true, 100000)
    local ws = assert(tycho.ws.connect(base .. "/echo"))
    assert.is_true(ws:send(("a"):rep(100000)))
    assert.equal(100000, #ws:receive())
    -- 10 MB of one letter deflates to about 10 KB: the frame is small,
    -- the message is not.
    ws:send(("a"):rep(10 * 1000 * 1000))
    assert.same({ nil, "closed", 1009, "message too big" }, { ws:receive() })
    support.wait_for(function() return #log.closes == 1 end, "the handler's close")
    assert.equal(1009, log.closes[1])
    stop(srv)
  end)

  it("limits the inflated size on the client too", function()
    local srv, base = start(true)
    local ws = assert(tycho.ws.connect(base .. "/echo", { max_message = 5000 }))
    ws:send(("b"):rep(4000))
    assert.equal(4000, #ws:receive())
    ws:send(("b"):rep(6000)) -- the server takes it; its echo is too big for us
    assert.same({ nil, "closed", 1009, "message too big" }, { ws:receive() })
    stop(srv)
  end)

  it("raises on misuse, naming the argument", function()
    for _, v in pairs(BAD) do
      local ok, err = pcall(tycho.ws.connect, "ws://127.0.0.1:1/", { permessage_deflate = v })
      assert.is_false(ok)
      assert.matches("bad argument #2 to 'connect' %(permessage_deflate", err)
    end
    local _, err = pcall(tycho.ws.connect, "ws://127.0.0.1:1/", { permessage_deflate = { level = 10 } })
    assert.matches("permessage_deflate.level must be an integer 0..9", err)
    _, err = pcall(tycho.ws.connect, "ws://127.0.0.1:1/", { permessage_deflate = { window = 9 } })
    assert.matches("unknown option 'window'", err)
    -- the errors point at the caller's line, not into ws.lua
    for _, opts in ipairs { { permessage_deflate = 3 }, { permessage_deflate = { level = 10 } },
                            { max_message = -1 } } do
      _, err = pcall(function()
        local ws = tycho.ws.connect("ws://127.0.0.1:1/", opts)
        return ws
      end)
      assert.matches("^spec/ws/deflate_spec.lua:%d+: bad argument #2 to 'connect'", err)
    end
    local srv, base, log = start(true)
    local port = base:match("%d+$")
    for case in pairs(BAD) do
      local body = http.get(("http://127.0.0.1:%s/misuse?case=%s"):format(port, case))
      assert.truthy(body)
      assert.matches("^spec/ws/deflate_spec.lua:%d+: bad argument #1 to 'websocket' %(permessage_deflate",
        log.misuse[case])
    end
    stop(srv)
  end)
end)

-- A fake server that answers the opening handshake with the extension
-- header `answer` (nil: none) and records the client's offer.
local function fake_server(answer)
  local seen = {}
  local srv = assert(tycho.net.listen { port = 0, handler = function(conn)
    local key, offer
    while true do
      local line = conn:read_line()
      if not line or line == "" then break end
      local name, value = line:match("^([^:]+):%s*(.-)%s*$")
      if name and name:lower() == "sec-websocket-key" then key = value end
      if name and name:lower() == "sec-websocket-extensions" then offer = value end
    end
    seen.offer = offer
    conn:write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      .. "Sec-WebSocket-Accept: " .. tycho.ws.accept_key(key) .. "\r\n"
      .. (answer and "Sec-WebSocket-Extensions: " .. answer .. "\r\n" or "") .. "\r\n")
    conn:read() -- until the client goes
    conn:close()
  end })
  return srv, "ws://127.0.0.1:" .. srv.port .. "/", seen
end

describe("permessage-deflate client", function()
  local OFFERS = {
    { nil, "permessage-deflate; client_max_window_bits" },
    { false, nil },
    { { max_window_bits = 10, server_no_context_takeover = true, client_no_context_takeover = true },
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        .. "server_max_window_bits=10; client_max_window_bits=10" },
  }
  it("offers what its options say", function()
    for _, case in ipairs(OFFERS) do
      local srv, url, seen = fake_server(nil)
      local ws = assert(tycho.ws.connect(url, { permessage_deflate = case[1] }))
      assert.equal(case[2], seen.offer)
      assert.is_nil(ws.extensions)
      ws:_abort()
      srv:close()
    end
  end)

  -- { our option, the server's answer, accepted? }
  local ANSWERS = {
    { nil, "permessage-deflate", true },
    { nil, "Permessage-Deflate; Server_No_Context_Takeover", true },
    { nil, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
      .. "server_max_window_bits=10; client_max_window_bits=9", true },
    { nil, 'permessage-deflate; server_max_window_bits="8"', true },
    { nil, "permessage-deflate; client_max_window_bits", false },
    { nil, "permessage-deflate; server_max_window_bits=16", false },
    { nil, "permessage-deflate; server_max_window_bits=7", false },
    { nil, "permessage-deflate; server_max_window_bits=010", false },
    { nil, "permessage-deflate; mystery=1", false },
    { nil, "permessage-deflate; server_no_context_takeover=1", false },
    { nil, "permessage-deflate; server_no_context_takeover; server_no_context_takeover", false },
    { nil, "permessage-deflate, permessage-deflate", false },
    { nil, "x-webkit-deflate-frame", false },
    { nil, 'permessage-deflate; server_max_window_bits="9', false },
    { false, "permessage-deflate", false },
    { { max_window_bits = 10 }, "permessage-deflate", false },
    { { max_window_bits = 10 }, "permessage-deflate; server_max_window_bits=11", false },
    { { max_window_bits = 10 }, "permessage-deflate; server_max_window_bits=10; client_max_window_bits=11", false },
    { { max_window_bits = 10 }, "permessage-deflate; server_max_window_bits=9; client_max_window_bits=8", true },
    { { server_no_context_takeover = true }, "permessage-deflate", false },
    { { server_no_context_takeover = true }, "permessage-deflate; server_no_context_takeover", true },
  }
  it("checks the server's answer strictly (RFC 7692 section 5)", function()
    for _, case in ipairs(ANSWERS) do
      local srv, url = fake_server(case[2])
      local ws, err, code = tycho.ws.connect(url, { permessage_deflate = case[1] })
      if case[3] then
        assert(ws, case[2] .. ": " .. tostring(err))
        assert.equal(case[2], ws.extensions)
        ws:_abort()
      else
        assert.is_nil(ws, case[2])
        assert.equal("EPROTO", code)
        assert.truthy(err:find("extension") or err:find("permessage%-deflate")
          or err:find("server ignored"), err)
      end
      srv:close()
    end
  end)
end)
