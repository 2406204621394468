--- tycho.http.metrics: a handler exposing Prometheus text (exposition
--- format 0.0.4). Opt-in: mount it on a route yourself,
---   app:get("/metrics", tycho.http.metrics())
--- Series (each with a `worker` label: the worker id, "0" for a process
--- without `--workers`, and "all" for the sum over every worker):
---   tycho_http_requests_total{class="2xx"}       responses by status class
---   tycho_http_request_duration_seconds          latency histogram
---   tycho_http_open_connections                  open HTTP connections
---   tycho_lua_memory_bytes                       Lua heap in use
---   tycho_loop_lag_seconds                       event loop lag (last probe)
---   tycho_workers, tycho_worker_restarts_total   under a supervisor only
--- Under `--workers` the worker that answers asks the supervisor, which
--- collects a fresh snapshot from every worker over its control pipe.
local uv = require "luv"
local ops = require "tycho.http.ops"
local check = require "tycho.check"

local M = {}

M.LAG_PROBE_MS = 500 -- how often the loop lag is sampled

local lag = 0
local probe

-- The loop lag: how late a timer fires compared with when it was due.
local function start_probe()
  if probe then return end
  probe = uv.new_timer()
  local due = uv.hrtime() + M.LAG_PROBE_MS * 1000000
  probe:start(M.LAG_PROBE_MS, M.LAG_PROBE_MS, function()
    local now = uv.hrtime()
    lag = math.max(0, now - due) / 1e9
    due = now + M.LAG_PROBE_MS * 1000000
  end)
  probe:unref()
end
M.start_probe = start_probe

---This process's numbers: request stats from the HTTP server, Lua memory
---and loop lag.
function M.snapshot()
  start_probe()
  local s = ops.stats()
  s.lua_bytes = math.floor(collectgarbage("count") * 1024)
  s.loop_lag = lag
  s.worker = tostring(require("tycho.worker").id or 0)
  s.pid = uv.os_getpid()
  return s
end

local CLASSES = { "1xx", "2xx", "3xx", "4xx", "5xx", "other" }

-- Prometheus's number format: integers plainly, +Inf as is.
local function num(v)
  if v == "+Inf" then return v end
  if math.type(v) == "integer" then return tostring(v) end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return ("%d"):format(v) end
  return ("%.9g"):format(v)
end

local function sum(snaps)
  local all = { worker = "all", requests = {}, buckets = {}, count = 0, seconds = 0,
    connections = 0, lua_bytes = 0, loop_lag = 0 }
  for _, c in ipairs(CLASSES) do all.requests[c] = 0 end
  for _, s in ipairs(snaps) do
    for _, c in ipairs(CLASSES) do all.requests[c] = all.requests[c] + (s.requests[c] or 0) end
    for i, b in ipairs(s.buckets) do
      all.buckets[i] = all.buckets[i] or { b[1], 0 }
      all.buckets[i][2] = all.buckets[i][2] + b[2]
    end
    all.count = all.count + s.count
    all.seconds = all.seconds + s.seconds
    all.connections = all.connections + s.connections
    all.lua_bytes = all.lua_bytes + s.lua_bytes
    all.loop_lag = math.max(all.loop_lag, s.loop_lag) -- the worst worker
  end
  return all
end

local function family(out, name, kind, help)
  out[#out + 1] = ("# HELP %s %s\n# TYPE %s %s\n"):format(name, help, name, kind)
end

local function gauge(out, snaps, name, field, help)
  family(out, name, "gauge", help)
  for _, s in ipairs(snaps) do
    out[#out + 1] = ('%s{worker="%s"} %s\n'):format(name, s.worker, num(s[field]))
  end
end

---Renders snapshots (plus their sum) as Prometheus text.
---@param snaps table[] one snapshot per worker
---@param sup? table the supervisor's numbers {workers=, restarts=}
function M.render(snaps, sup)
  check.arg(1, "render", snaps, "table")
  table.sort(snaps, function(a, b) return (tonumber(a.worker) or 0) < (tonumber(b.worker) or 0) end)
  local list = {}
  for i, s in ipairs(snaps) do list[i] = s end
  list[#list + 1] = sum(snaps)
  local out = {}
  family(out, "tycho_http_requests_total", "counter", "HTTP responses by status class.")
  for _, s in ipairs(list) do
    for _, c in ipairs(CLASSES) do
      out[#out + 1] = ('tycho_http_requests_total{worker="%s",class="%s"} %s\n'):format(
        s.worker, c, num(s.requests[c]))
    end
  end
  local h = "tycho_http_request_duration_seconds"
  family(out, h, "histogram", "Time from a request's first byte to the end of its response.")
  for _, s in ipairs(list) do
    for _, b in ipairs(s.buckets) do
      out[#out + 1] = ('%s_bucket{worker="%s",le="%s"} %s\n'):format(h, s.worker, num(b[1]), num(b[2]))
    end
    out[#out + 1] = ('%s_sum{worker="%s"} %s\n'):format(h, s.worker, num(s.seconds))
    out[#out + 1] = ('%s_count{worker="%s"} %s\n'):format(h, s.worker, num(s.count))
  end
  gauge(out, list, "tycho_http_open_connections", "connections", "Open HTTP connections.")
  gauge(out, list, "tycho_lua_memory_bytes", "lua_bytes", "Memory used by the Lua state.")
  gauge(out, list, "tycho_loop_lag_seconds", "loop_lag",
    "Event loop lag at the last probe (the sum is the worst worker).")
  if sup then
    family(out, "tycho_workers", "gauge", "Worker processes running.")
    out[#out + 1] = ("tycho_workers %s\n"):format(num(sup.workers))
    family(out, "tycho_worker_restarts_total", "counter", "Workers restarted after exiting.")
    out[#out + 1] = ("tycho_worker_restarts_total %s\n"):format(num(sup.restarts))
  end
  return table.concat(out)
end

---Collects the snapshots: every worker's under a supervisor, else this
---process's. Yields under a supervisor.
function M.collect()
  local worker = require "tycho.worker"
  if worker.active() then
    local answer = worker.scrape()
    if answer and type(answer.workers) == "table" and #answer.workers > 0 then
      return answer.workers, answer.supervisor
    end
  end
  return { M.snapshot() }
end

---A handler answering with the metrics text.
---@return function handler(req, res)
function M.handler()
  start_probe()
  return function(req, res)
    local snaps, sup = M.collect()
    res:header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
    res:send(M.render(snaps, sup))
  end
end

return M
