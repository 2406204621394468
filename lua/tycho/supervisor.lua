--- tycho.supervisor: `tycho run APP --workers N`. The supervisor process
--- never loads the app: it binds the port, starts N worker processes (this
--- same binary, `run APP ... --worker-id K`), restarts those that exit,
--- and turns signals into graceful stops and rolling restarts.
---
--- Listening: for each worker slot the supervisor binds one SO_REUSEPORT
--- socket on the port and keeps it open for its whole life; worker K gets
--- slot K's socket as fd 3 and listens on it. The kernel spreads new
--- connections evenly over the slots' sockets, and because the supervisor
--- holds every socket, a slot's accept queue survives its worker: while a
--- worker restarts or is replaced, connections hashed to its slot wait in
--- the queue for the next worker instead of being refused.
---
--- Signals:
---   SIGTERM, SIGINT  every worker stops accepting and finishes what is in
---                    flight (`--grace`), then the supervisor exits 0; a
---                    second signal kills the workers at once
---   SIGHUP           rolling restart: for each slot in turn a new worker
---                    starts on the slot's socket, and once it is ready the
---                    old one drains and exits
--- A worker that exits on its own is restarted after a backoff delay that
--- doubles while workers keep dying young (BACKOFF_MIN..BACKOFF_MAX).
--- Messages with the workers go over a pipe (fd 4, see tycho.worker).
local uv = require "luv"
local core = require "tycho.core"
local json = require "tycho.json"
local log = require "tycho.log"
local signals = require "tycho.signals"

local M = {}

M.BACKOFF_MIN = 0.1    -- seconds before restarting a worker that died young
M.BACKOFF_MAX = 10
M.STABLE_SECONDS = 10  -- a worker that lived this long resets its backoff
M.KILL_MARGIN = 5      -- seconds after --grace before stragglers get SIGKILL
M.READY_TIMEOUT = 60   -- seconds a new worker has to become ready
M.SNAP_TIMEOUT_MS = 1000

local S -- the running supervisor's state

-- ---------------------------------------------------------------------
-- Workers

local function send(w, msg)
  if w.pipe and not w.pipe:is_closing() then
    w.pipe:write(json.encode(msg) .. "\n")
  end
end

local function describe(w)
  return ("worker %d (pid %d)"):format(w.id, w.pid)
end

local function live_workers()
  local list = {}
  for _, w in pairs(S.workers) do
    if w.ready and not w.exited then list[#list + 1] = w end
  end
  return list
end

local on_exit, on_message

-- The worker's command line: the supervisor's own `run` arguments without
-- --workers, --repl PATH made per worker, and --worker-id K.
local function worker_args(a, id)
  local args = { "run" }
  local i = 1
  while i <= #a do
    local v = a[i]
    if v == "--" then break end
    if v == "--workers" then
      i = i + 1
    elseif v == "--repl" then
      args[#args + 1] = v
      args[#args + 1] = ("%s.%d"):format(a[i + 1], id)
      i = i + 1
    else
      args[#args + 1] = v
    end
    i = i + 1
  end
  args[#args + 1] = "--worker-id"
  args[#args + 1] = tostring(id)
  for j = i, #a do args[#args + 1] = a[j] end
  return args
end
M.worker_args = worker_args

local function spawn(id)
  local slot = S.slots[id]
  local pipe = uv.new_pipe(false)
  local w = { id = id, pipe = pipe, started = uv.hrtime(), buf = "" }
  local handle, pid = uv.spawn(S.exe, {
    args = worker_args(S.args, id),
    stdio = { 0, 1, 2, slot.fd, pipe },
  }, function(code, sig) on_exit(w, code, sig) end)
  if not handle then
    pipe:close()
    log.error("cannot start worker %d: %s", id, tostring(pid))
    return nil, pid
  end
  w.handle, w.pid = handle, pid
  S.workers[pid] = w
  pipe:read_start(function(err, data)
    if err or not data then
      if not pipe:is_closing() then pipe:close() end
      return
    end
    w.buf = w.buf .. data
    for line in w.buf:gmatch("([^\n]*)\n") do
      local ok, msg = pcall(json.decode, line)
      if ok and type(msg) == "table" then on_message(w, msg) end
    end
    w.buf = w.buf:match("[^\n]*$")
  end)
  log.debug("started %s", describe(w))
  return w
end

local function finish_if_done()
  if not S.stopping or next(S.workers) then return end
  for _, slot in ipairs(S.slots) do uv.fs_close(slot.fd) end
  if S.kill_timer and not S.kill_timer:is_closing() then S.kill_timer:close() end
  log.info("all workers stopped")
  core.exit(S.exit_code or 0)
end

local function schedule_restart(id)
  local slot = S.slots[id]
  local delay = slot.backoff
  slot.backoff = math.min(slot.backoff * 2, M.BACKOFF_MAX)
  local timer = uv.new_timer()
  slot.timer = timer
  timer:start(math.floor(delay * 1000), 0, function()
    timer:close()
    slot.timer = nil
    if S.stopping then return end
    S.restarts = S.restarts + 1
    local w = spawn(id)
    if w then slot.worker = w else schedule_restart(id) end
  end)
  return delay
end

function on_exit(w, code, sig)
  w.exited = true
  S.workers[w.pid] = nil
  if not w.handle:is_closing() then w.handle:close() end
  if w.pipe and not w.pipe:is_closing() then w.pipe:close() end
  local slot = S.slots[w.id]
  local how = sig ~= 0 and ("signal %d"):format(sig) or ("code %d"):format(code)
  if S.stopping then
    log.info("%s exited (%s)", describe(w), how)
    return finish_if_done()
  end
  if w.retiring then
    log.info("%s retired (%s)", describe(w), how)
    if w.on_gone then w.on_gone(code, sig) end
    return
  end
  if w.on_gone then w.on_gone(code, sig) end
  if w.replacing then -- a rolling restart's new worker: replace() decides
    log.warn("%s exited (%s) before it was ready", describe(w), how)
    return
  end
  if slot.worker ~= w then -- replaced meanwhile by a rolling restart
    log.warn("%s exited (%s) while being replaced", describe(w), how)
    return
  end
  if not slot.ever_ready then
    log.error("%s exited (%s) before it was ready: stopping", describe(w), how)
    S.exit_code = 1
    return M.stop("drain")
  end
  local lived = (uv.hrtime() - w.started) / 1e9
  if lived >= M.STABLE_SECONDS then slot.backoff = M.BACKOFF_MIN end
  local delay = schedule_restart(w.id)
  log.warn("%s exited (%s); restarting in %.1fs", describe(w), how, delay)
end

-- ---------------------------------------------------------------------
-- Metrics: a worker asks, every worker answers, the asker gets them all

local function finish_scrape(sc)
  if sc.done then return end
  sc.done = true
  if not sc.timer:is_closing() then sc.timer:close() end
  S.scrapes[sc.sid] = nil
  local list = {}
  for _, data in pairs(sc.got) do list[#list + 1] = data end
  local n = 0
  for _, slot in ipairs(S.slots) do
    if slot.worker and slot.worker.ready and not slot.worker.exited then n = n + 1 end
  end
  send(sc.from, {
    scraped = sc.id, workers = list,
    supervisor = { workers = n, restarts = S.restarts },
  })
end

local function start_scrape(from, id)
  S.last_sid = S.last_sid + 1
  local sc = { sid = S.last_sid, from = from, id = id, got = {}, want = 0 }
  S.scrapes[sc.sid] = sc
  sc.timer = uv.new_timer()
  sc.timer:start(M.SNAP_TIMEOUT_MS, 0, function() finish_scrape(sc) end)
  for _, w in ipairs(live_workers()) do
    sc.want = sc.want + 1
    send(w, { snap = sc.sid })
  end
  if sc.want == 0 then finish_scrape(sc) end
end

function on_message(w, msg)
  if msg.ready then
    w.ready = true
    S.slots[w.id].ever_ready = true
    log.info("%s ready on port %d", describe(w), msg.ready)
    if w.on_ready then w.on_ready() end
    local all = true
    for _, slot in ipairs(S.slots) do all = all and slot.ever_ready end
    if all and not S.announced then -- what `tycho run` prints when serving
      S.announced = true
      io.stderr:write(("listening on http://%s:%d (%d workers)\n"):format(S.host, S.port, #S.slots))
      io.stderr:flush()
    end
  elseif msg.scrape then
    start_scrape(w, msg.scrape)
  elseif msg.snap then
    local sc = S.scrapes[msg.snap]
    if sc and not sc.got[w.pid] then
      sc.got[w.pid] = msg.data
      sc.want = sc.want - 1
      if sc.want <= 0 then finish_scrape(sc) end
    end
  end
end

-- ---------------------------------------------------------------------
-- Stop and rolling restart

---Stops every worker: "drain" finishes requests in flight, then exit.
function M.stop(mode)
  if S.stopping then return end
  S.stopping = true
  for _, slot in ipairs(S.slots) do
    if slot.timer then
      slot.timer:close()
      slot.timer = nil
    end
  end
  for _, w in pairs(S.workers) do send(w, { stop = mode or "drain" }) end
  S.kill_timer = uv.new_timer()
  S.kill_timer:start(math.floor((S.grace + M.KILL_MARGIN) * 1000), 0, function()
    for _, w in pairs(S.workers) do
      log.warn("%s still running after the grace period: killing it", describe(w))
      w.handle:kill("sigkill")
    end
  end)
  finish_if_done()
end

-- Waits (in a task) until fn's callback fires or `seconds` pass.
local function await(seconds, arm)
  local co, tok = core.token()
  local timer = uv.new_timer()
  timer:start(math.floor(seconds * 1000), 0, function() core.wake(co, tok, false) end)
  arm(function(...) core.wake(co, tok, true, ...) end)
  local ok = core.park(function() timer:close() end)
  if not timer:is_closing() then timer:close() end
  return ok
end

-- Replaces slot `id`'s worker: the new one is ready before the old drains.
local function replace(id)
  local slot = S.slots[id]
  local old = slot.worker
  if slot.timer then -- its worker died and waits for a restart: do it now
    slot.timer:close()
    slot.timer = nil
    old = nil
  end
  local new = spawn(id)
  if not new then return false end
  new.replacing = true
  slot.worker = new
  local ok = await(M.READY_TIMEOUT, function(done)
    new.on_ready = done
    new.on_gone = function() done(false) end
  end)
  new.on_ready, new.on_gone, new.replacing = nil, nil, nil
  if not ok or new.exited then
    log.error("rolling restart: new worker %d did not become ready; keeping the old one", id)
    if not new.exited then
      new.retiring = true
      new.handle:kill("sigkill")
    end
    slot.worker = old
    if not old or old.exited then schedule_restart(id) end
    return false
  end
  if old and not old.exited then
    old.retiring = true
    send(old, { stop = "lazy" })
    await(S.grace + M.KILL_MARGIN, function(done) old.on_gone = done end)
    if not old.exited then old.handle:kill("sigkill") end
  end
  return true
end

---Restarts the workers one at a time. Runs as a task.
function M.rolling_restart()
  if S.rolling then
    log.warn("rolling restart already in progress")
    return
  end
  S.rolling = true
  log.info("rolling restart of %d workers", #S.slots)
  local all = true
  for id = 1, #S.slots do
    if S.stopping then break end
    if not replace(id) then
      all = false
      break
    end
  end
  S.rolling = false
  S.generation = S.generation + 1
  if all and not S.stopping then log.info("rolling restart done") end
end

local function take_signals()
  signals.take(function(signame)
    if signame == "SIGHUP" then
      core.spawn(M.rolling_restart)
      return true
    end
    if signame ~= "SIGINT" and signame ~= "SIGTERM" then return false end
    if S.stopping then -- second signal: no more waiting
      for _, w in pairs(S.workers) do w.handle:kill("sigkill") end
      S.exit_code = signame == "SIGINT" and 130 or 143
      return true
    end
    log.info("%s: stopping %d workers (grace %gs)", signame, #S.slots, S.grace)
    M.stop("drain")
    return true
  end)
end

---The number of workers `auto` means: the CPUs this process may use.
function M.cores()
  return uv.available_parallelism and uv.available_parallelism() or #uv.cpu_info()
end

---Starts the supervisor. o: the parsed `run` options (host, port, workers,
---grace); args: the `run` arguments as given. Returns 0 (the loop runs on)
---or an exit code.
function M.start(o, args)
  log.set_source("supervisor")
  local n = o.workers
  S = {
    args = args, exe = uv.exepath(), grace = o.grace, host = o.host, slots = {}, workers = {},
    restarts = 0, scrapes = {}, last_sid = 0, generation = 1,
  }
  M.state = S
  local port = o.port
  for id = 1, n do
    local fd, bound_or_err = require("tycho.http.ops").reuseport_socket(o.host, port)
    if not fd then
      for _, slot in ipairs(S.slots) do uv.fs_close(slot.fd) end
      log.error("%s", bound_or_err)
      return 1
    end
    port = bound_or_err -- port 0: the others join the port the first got
    S.slots[id] = { fd = fd, backoff = M.BACKOFF_MIN }
  end
  S.port = port
  take_signals()
  for id = 1, n do
    local w = spawn(id)
    if not w then
      S.exit_code = 1
      M.stop("drain")
      return 0
    end
    S.slots[id].worker = w
  end
  log.info("supervisor pid %d: %d workers on http://%s:%d", uv.os_getpid(), n, o.host, port)
  return 0
end

return M
