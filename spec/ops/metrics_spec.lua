-- Specs for lua/tycho/http/metrics.lua and the request statistics of
-- src/http/ops.c: counts move with real requests, the text follows the
-- Prometheus exposition format.
local tycho = require "tycho"
local metrics = require "tycho.http.metrics"
local ops = require "tycho.http.ops"
local client = require "tycho.http.client"

-- A small exposition-format reader: {name = {{labels=..., value=...}}},
-- and the TYPE of each family; raises on a malformed line.
local function parse(text)
  local samples, types = {}, {}
  for line in text:gmatch("([^\n]*)\n") do
    if line:match("^# TYPE ") then
      local name, kind = line:match("^# TYPE ([%a_:][%w_:]*) (%a+)$")
      assert(name, "bad TYPE line: " .. line)
      types[name] = kind
    elseif line:match("^# HELP ") then
      assert(line:match("^# HELP [%a_:][%w_:]* .+$"), "bad HELP line: " .. line)
    else
      local name, labels, value = line:match('^([%a_:][%w_:]*){(.-)} (%S+)$')
      if not name then
        name, value = line:match("^([%a_:][%w_:]*) (%S+)$")
        labels = ""
      end
      assert(name, "bad sample line: " .. line)
      local l = {}
      for k, v in labels:gmatch('([%a_][%w_]*)="([^"]*)"') do l[k] = v end
      local n = value == "+Inf" and math.huge or tonumber(value)
      assert(n, "bad value: " .. line)
      samples[name] = samples[name] or {}
      table.insert(samples[name], { labels = l, value = n })
    end
  end
  return samples, types
end

local function value(samples, name, want)
  for _, s in ipairs(samples[name] or {}) do
    local match = true
    for k, v in pairs(want) do
      if s.labels[k] ~= v then match = false end
    end
    if match then return s.value end
  end
end

describe("tycho.http.metrics", function()
  local server, base
  before_each(function()
    local app = tycho.http.router()
    app:get("/ok", function() return "fine" end)
    app:get("/metrics", tycho.http.metrics())
    server = assert(tycho.http.serve { port = 0, handler = app })
    base = "http://127.0.0.1:" .. server.port
  end)
  after_each(function()
    server:close()
    server:wait_closed()
  end)

  it("counts responses by status class and in the latency histogram", function()
    local before = ops.stats()
    for _ = 1, 3 do assert.equal(200, client.get(base .. "/ok").status) end
    assert.equal(404, client.get(base .. "/nope").status)
    local after = ops.stats()
    assert.equal(3, after.requests["2xx"] - before.requests["2xx"])
    assert.equal(1, after.requests["4xx"] - before.requests["4xx"])
    assert.equal(4, after.count - before.count)
    local inf = after.buckets[#after.buckets]
    assert.equal("+Inf", inf[1])
    assert.equal(after.count, inf[2])
    for i = 2, #after.buckets do -- cumulative
      assert.is_true(after.buckets[i][2] >= after.buckets[i - 1][2])
    end
    assert.is_true(after.seconds > before.seconds)
  end)

  it("serves parseable exposition text whose numbers follow the requests", function()
    client.get(base .. "/ok")
    local r1 = assert(client.get(base .. "/metrics"))
    assert.equal(200, r1.status)
    assert.matches("^text/plain; version=0%.0%.4", r1.headers["content-type"])
    local s1, types = parse(r1.body)
    assert.equal("counter", types.tycho_http_requests_total)
    assert.equal("histogram", types.tycho_http_request_duration_seconds)
    assert.equal("gauge", types.tycho_http_open_connections)
    assert.equal("gauge", types.tycho_lua_memory_bytes)
    assert.equal("gauge", types.tycho_loop_lag_seconds)
    for _ = 1, 5 do client.get(base .. "/ok") end
    local s2 = parse(assert(client.get(base .. "/metrics")).body)
    local function ok2xx(s) return value(s, "tycho_http_requests_total", { worker = "0", class = "2xx" }) end
    -- five /ok and the first /metrics (counted once its response ended)
    assert.equal(6, ok2xx(s2) - ok2xx(s1))
    assert.equal(ok2xx(s2), value(s2, "tycho_http_requests_total", { worker = "all", class = "2xx" }))
    local count = value(s2, "tycho_http_request_duration_seconds_count", { worker = "0" })
    assert.equal(count, value(s2, "tycho_http_request_duration_seconds_bucket", { worker = "0", le = "+Inf" }))
    assert.is_true(value(s2, "tycho_lua_memory_bytes", { worker = "0" }) > 10000)
    assert.is_true(value(s2, "tycho_http_open_connections", { worker = "0" }) >= 1)
  end)

  it("renders the sum of several workers' snapshots", function()
    local a, b = metrics.snapshot(), metrics.snapshot()
    a.worker, b.worker = "1", "2"
    a.requests["5xx"], b.requests["5xx"] = 2, 5
    a.loop_lag, b.loop_lag = 0.25, 0.5
    local s = parse(metrics.render({ b, a }, { workers = 2, restarts = 4 }))
    assert.equal(7, value(s, "tycho_http_requests_total", { worker = "all", class = "5xx" }))
    assert.equal(0.5, value(s, "tycho_loop_lag_seconds", { worker = "all" }))
    assert.equal(a.lua_bytes + b.lua_bytes, value(s, "tycho_lua_memory_bytes", { worker = "all" }))
    assert.equal(2, value(s, "tycho_workers", {}))
    assert.equal(4, value(s, "tycho_worker_restarts_total", {}))
    assert.equal("1", s.tycho_http_requests_total[1].labels.worker) -- sorted
  end)

  it("raises on misuse", function()
    assert.has_error(function() metrics.render(nil) end,
      "bad argument #1 to 'render' (table expected, got nil)")
  end)
end)
