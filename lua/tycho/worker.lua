--- tycho.worker: a `tycho run --workers N` worker's side of the control
--- channel to its supervisor (lua/tycho/supervisor.lua).
---
--- The supervisor starts each worker with two extra descriptors: fd 3 is
--- the listening socket (a bound SO_REUSEPORT socket the supervisor keeps
--- open, so its accept queue outlives any one worker) and fd 4 is a pipe
--- carrying newline-delimited JSON messages both ways:
---   worker -> supervisor  {"ready": port}          serving
---                         {"scrape": id}           metrics of all workers?
---                         {"snap": sid, "data": t} this worker's metrics
---   supervisor -> worker  {"stop": "drain"|"lazy"} stop accepting, finish
---                         {"snap": sid}            send your metrics
---                         {"scraped": id, "workers": [...], "supervisor": t}
--- End of file on the pipe means the supervisor is gone: the worker drains
--- and exits, so no worker outlives it.
local uv = require "luv"
local core = require "tycho.core"
local json = require "tycho.json"

local M = {}

M.LISTEN_FD = 3
M.CONTROL_FD = 4
M.SCRAPE_TIMEOUT_MS = 2000

local pipe
local waiting = {} -- scrape id -> {co, tok}
local last_id = 0

local function send(msg)
  if pipe and not pipe:is_closing() then pipe:write(json.encode(msg) .. "\n") end
end

local function on_message(msg, handlers)
  if msg.stop then
    handlers.stop(msg.stop)
  elseif msg.snap then
    send { snap = msg.snap, data = require("tycho.http.metrics").snapshot() }
  elseif msg.scraped then
    local w = waiting[msg.scraped]
    waiting[msg.scraped] = nil
    if w then core.wake(w[1], w[2], msg) end
  end
end

---Opens the control channel. handlers.stop(mode) is called on a stop
---message ("drain": the supervisor shuts down; "lazy": a rolling restart)
---and, with "drain", when the supervisor goes away.
---@param id integer this worker's id (1..N)
---@param handlers table
function M.start(id, handlers)
  M.id = id
  pipe = uv.new_pipe(false)
  local ok, err = pipe:open(M.CONTROL_FD)
  if not ok then
    pipe:close()
    pipe = nil
    return nil, err
  end
  local buf = ""
  pipe:read_start(function(rerr, data)
    if rerr or not data then
      pipe:close()
      handlers.stop("drain")
      return
    end
    buf = buf .. data
    for line in buf:gmatch("([^\n]*)\n") do
      local msg = json.decode(line)
      if type(msg) == "table" then on_message(msg, handlers) end
    end
    buf = buf:match("[^\n]*$")
  end)
  return true
end

---Tells the supervisor this worker serves on `port`.
function M.ready(port)
  send { ready = port }
end

---True in a worker process of `--workers`.
function M.active()
  return pipe ~= nil
end

---Asks the supervisor for the metrics snapshot of every worker. Yields.
---Returns the supervisor's answer {workers = {...}, supervisor = {...}},
---or nil and a message.
function M.scrape()
  if not pipe or pipe:is_closing() then return nil, "not a worker" end
  last_id = last_id + 1
  local id = last_id
  local co, tok = core.token()
  waiting[id] = { co, tok }
  local timer = uv.new_timer()
  timer:start(M.SCRAPE_TIMEOUT_MS, 0, function()
    timer:close()
    if waiting[id] then
      waiting[id] = nil
      core.wake(co, tok, nil)
    end
  end)
  send { scrape = id }
  local answer = core.park(function()
    waiting[id] = nil
    if not timer:is_closing() then timer:close() end
  end)
  if not timer:is_closing() then timer:close() end
  if not answer then return nil, "the supervisor did not answer" end
  return answer
end

return M
