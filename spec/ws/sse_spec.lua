-- Specs for Server-Sent Events (lua/tycho/http/sse.lua): event framing,
-- argument checks, and whole streams through tycho.test.request.
local tycho = require "tycho"
local http = require "tycho.http"
local sse = require "tycho.http.sse"
local ttest = require "tycho.test"

describe("SSE event framing", function()
  it("splits multi-line data into data: lines", function()
    assert.equal("data: one\ndata: two\ndata: \ndata: four\n\n", sse.encode { data = "one\ntwo\n\nfour" })
    assert.equal("data: a\ndata: b\ndata: c\n\n", sse.encode { data = "a\r\nb\rc" })
    assert.equal("data: \n\n", sse.encode { data = "" })
  end)

  it("writes event, id and retry before data", function()
    assert.equal("event: tick\nid: 7\nretry: 1500\ndata: x\n\n",
      sse.encode { event = "tick", id = 7, retry = 1500, data = "x" })
  end)

  it("raises on fields that would break the framing", function()
    assert.has_error(function() sse.encode { event = "a\nb", data = "x" } end,
      "bad argument #1 to 'send' (event must not contain a line break)")
    assert.has_error(function() sse.encode { id = "1\r", data = "x" } end)
    assert.has_error(function() sse.encode { retry = 1.5 } end,
      "bad argument #1 to 'send' (retry must be a non-negative integer)")
    assert.has_error(function() sse.encode {} end, "bad argument #1 to 'send' (empty event)")
  end)
end)

describe("res:sse()", function()
  local app = http.router()
  app:get("/events", function(req, res)
    local last = tonumber((req:header("last-event-id"))) or 0
    local stream = res:sse { heartbeat = false }
    for i = last + 1, last + 2 do stream:send { id = i, data = "n" .. i } end
    stream:send("plain string")
    stream:comment("done")
    stream:close()
    assert.same({ nil, "closed" }, { stream:send("after close") })
  end)
  app:get("/bad", function(_, res)
    local ok, err = pcall(res.sse, res, { heartbeat = -1 })
    res:send(tostring(ok) .. " " .. err)
  end)

  it("streams events with the right headers", function()
    local res = assert(ttest.request(app, { path = "/events" }))
    assert.equal(200, res.status)
    assert.equal("text/event-stream", res.headers["content-type"])
    assert.equal("no-cache", res.headers["cache-control"])
    assert.equal(": stream\n\nid: 1\ndata: n1\n\nid: 2\ndata: n2\n\ndata: plain string\n\n: done\n\n", res.body)
  end)

  it("continues after Last-Event-ID", function()
    local res = assert(ttest.request(app, { path = "/events", headers = { ["Last-Event-ID"] = "40" } }))
    assert.matches("id: 41\ndata: n41\n\nid: 42\n", res.body, 1, true)
  end)

  it("checks its options", function()
    local res = assert(ttest.request(app, { path = "/bad" }))
    assert.matches("false .*heartbeat must be a positive number or false", res.body)
  end)

  it("sends heartbeats while the handler waits", function()
    local hb = http.router()
    hb:get("/", function(_, res)
      local stream = res:sse { heartbeat = 0.01 }
      tycho.sleep(0.1)
      stream:close()
    end)
    local res = assert(ttest.request(hb, { path = "/" }))
    local n = select(2, res.body:gsub(": heartbeat\n\n", ""))
    assert.is_true(n >= 2, res.body)
  end)
end)

describe("app:websocket", function()
  it("checks its arguments", function()
    local app = http.router()
    assert.has_error(function() app:websocket(1, function() end) end,
      "bad argument #1 to 'websocket' (string expected, got number)")
    assert.has_error(function() app:websocket("/x", "nope") end,
      "bad argument #2 to 'websocket' (function expected, got string)")
    assert.has_error(function() app:websocket("/x", function() end, 5) end,
      "bad argument #3 to 'websocket' (table expected, got number)")
  end)

  it("answers 426 to a plain request on a websocket route", function()
    local app = http.router()
    app:websocket("/ws", function() end)
    local res = assert(ttest.request(app, { path = "/ws" }))
    assert.equal(426, res.status)
    assert.equal("websocket", res.headers["upgrade"])
  end)
end)
