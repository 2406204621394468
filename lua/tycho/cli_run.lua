--- `tycho run APP.lua [--host H] [--port N]`: runs the app script; when it
--- returns a handler (function or router), serves it until SIGINT/SIGTERM,
--- which stop accepting, let requests in flight finish, and exit 0.
local core = require "tycho.core"
local cli = require "tycho.cli"
local signals = require "tycho.signals"

local M = {}

M.GRACE_SECONDS = 10
M.BLOCK_WARN_MS = 200 -- `--block-warn` default; 0 turns the watchdog off

M.OPTIONS = { "--host", "--port", "--grace", "--repl", "--watch", "--block-warn", "--cpu-limit",
  "--memory-limit", "--max-body", "--workers", "--worker-id", "--access-log", "--log-level", "--gzip" }

local function parse(args)
  local o = { host = "127.0.0.1", port = 8080, script_args = {} }
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--" then
      table.move(args, i + 1, #args, 1, o.script_args)
      break
    elseif a == "--host" or a == "--port" or a == "--grace" or a == "--repl" then
      local v = args[i + 1]
      if not v then return nil, ("'%s' needs a value"):format(a) end
      if a == "--host" then
        o.host = v
      elseif a == "--repl" then
        o.repl = v
      else
        local n = tonumber(v)
        if not n or n < 0 or (a == "--port" and (n > 65535 or n % 1 ~= 0)) then
          return nil, ("bad value '%s' for %s"):format(v, a)
        end
        if a == "--port" then o.port = n else o.grace = n end
      end
      i = i + 1
    elseif a == "--watch" then
      o.watch = true -- hot reload on save (lua/tycho/reload.lua)
    elseif a == "--gzip" then
      o.gzip = true -- serve{compression = true} (docs/http.md, Compression)
    elseif a == "--block-warn" or a == "--cpu-limit" or a == "--memory-limit"
        or a == "--max-body" then
      -- the loop watchdog (src/thread/watchdog.c); a handler's cpu time per
      -- request in ms and the Lua state's memory cap in MB (docs/security.md);
      -- the request body limit in bytes (413 above it)
      local v = args[i + 1]
      local n = math.tointeger(tonumber(v or ""))
      if not n or n < 0 or (a == "--max-body" and n < 1) then
        return nil, v and ("bad value '%s' for %s"):format(v, a) or ("'%s' needs a value"):format(a)
      end
      o[(a:sub(3):gsub("%-", "_"))] = n
      i = i + 1
    elseif a == "--workers" or a == "--worker-id" or a == "--access-log" or a == "--log-level" then
      local v = args[i + 1] -- operations options (lua/tycho/supervisor.lua, log.lua)
      if not v then return nil, ("'%s' needs a value"):format(a) end
      local n = math.tointeger(tonumber(v))
      if a == "--workers" then
        if v == "auto" then n = require("tycho.supervisor").cores() end
        if not n or n < 1 then return nil, ("bad value '%s' for --workers (a count or auto)"):format(v) end
        o.workers = n
      elseif a == "--worker-id" then
        if not n or n < 1 then return nil, ("bad value '%s' for --worker-id"):format(v) end
        o.worker_id = n
      elseif a == "--access-log" then
        o.access_log = v
      elseif not require("tycho.log").LEVELS[v] then
        return nil, ("bad value '%s' for --log-level (debug, info, warn, error)"):format(v)
      else
        o.log_level = v
      end
      i = i + 1
    elseif a:sub(1, 1) == "-" then
      return nil, ("unknown option '%s' for 'run'%s"):format(a, cli.did_you_mean(a, M.OPTIONS))
    elseif not o.app then
      o.app = a
    else
      o.script_args[#o.script_args + 1] = a
    end
    i = i + 1
  end
  if not o.app then return nil, "'run' needs an app script: tycho run APP.lua" end
  return o
end
M.parse = parse

-- Stops accepting and drains: the process exits 0 when the last request
-- ends or the grace period runs out. `lazy` (a rolling restart) lets idle
-- keep-alive connections end by themselves rather than closing them under
-- a request the client may be sending.
local function drain(server, grace, lazy)
  if M.draining then return end
  M.draining = true
  require("tycho.http.health").draining = true
  server:close(false, lazy)
  local function done()
    if M.access_log then M.access_log.close() end
    core.exit(0)
  end
  tycho.set_timeout(grace * 1000, done):unref()
  tycho.spawn(function()
    server:wait_closed()
    done()
  end)
end

-- First signal: stop accepting and drain; a second one, or the grace
-- period running out, ends the process at once.
local function graceful(server, grace)
  local signalled = false
  signals.take(function(signame)
    if signame ~= "SIGINT" and signame ~= "SIGTERM" then return false end
    if signalled then
      core.exit(signame == "SIGINT" and 130 or 143)
      return true
    end
    signalled = true
    drain(server, grace)
    return true
  end)
end

-- A worker of `--workers`: its REPL path may still be held by the worker
-- it replaces (a rolling restart), so it retries for a while.
local function worker_repl(path)
  local repl_server = require "tycho.repl.server"
  tycho.spawn(function()
    for _ = 1, 300 do
      local repl, rerr, code = repl_server.listen(path)
      if repl then
        M.repl = repl
        return
      end
      if code ~= "EADDRINUSE" then
        require("tycho.log").error("--repl %s: %s", path, rerr)
        return
      end
      tycho.sleep(0.1)
    end
  end)
end

---Loads and runs the app; returns its handler (or nil) and an exit code.
function M.load_app(path, script_args)
  local f = io.open(path, "r")
  if not f then return nil, cli.usage_error("cannot open %s", path) end
  f:close()
  local chunk, err = loadfile(path)
  if not chunk then
    cli.say_error("%s", err)
    return nil, 1
  end
  local ok, handler = cli.protect(chunk, table.unpack(script_args))
  if not ok then
    if type(handler) == "userdata" then error(handler, 0) end
    cli.say_error("%s", tostring(handler))
    return nil, 1
  end
  return handler, 0
end

function M.main(args)
  local o, err = parse(args)
  if not o then return cli.usage_error("%s", err) end
  local log = require "tycho.log"
  if o.log_level then log.set_level(o.log_level) end
  if o.workers and not o.worker_id then -- the supervisor never loads the app
    o.grace = o.grace or M.GRACE_SECONDS
    return require("tycho.supervisor").start(o, args)
  end
  if o.worker_id then log.set_source("worker " .. o.worker_id) end
  local wok, werr = require("tycho.thread").watchdog { ms = o.block_warn or M.BLOCK_WARN_MS }
  if not wok then cli.say_error("--block-warn: %s", werr) end
  local arg = { [0] = o.app }
  for i, a in ipairs(o.script_args) do arg[i] = a end
  _G.arg = arg
  if o.repl and o.worker_id then
    worker_repl(o.repl)
  elseif o.repl then -- a REPL into this process, for `tycho attach PATH`
    local repl, rerr = require("tycho.repl.server").listen(o.repl)
    if not repl then
      cli.say_error("--repl %s: %s", o.repl, rerr)
      return 1
    end
    M.repl = repl
  end
  -- Loaded as a reload generation, so SIGHUP and --watch can swap it.
  local reload = require "tycho.reload"
  local router, http_mod = require "tycho.http.router", require "tycho.http"
  local routers, serves = router.created or 0, http_mod.serves or 0
  local handler, code = reload.start(o.app, o.script_args)
  if code ~= 0 then return code end
  if handler == nil then -- a plain script: the loop runs on
    if (router.created or 0) > routers and (http_mod.serves or 0) == serves then
      cli.say_error("%s built a router but returned nothing, so nothing is served: "
        .. "end the file with `return app`", o.app)
    end
    return 0
  end
  local http = require "tycho.http"
  if not http.as_handler(handler) then
    cli.say_error("%s returned a %s: return a handler function or a router", o.app, type(handler))
    return 1
  end
  local worker = o.worker_id and require "tycho.worker"
  local server, lerr, lcode = http.serve { host = o.host, port = o.port, handler = handler,
    cpu_limit_ms = o.cpu_limit, memory_limit_mb = o.memory_limit, max_body_bytes = o.max_body,
    compression = o.gzip,
    fd = worker and worker.LISTEN_FD } -- a worker listens on the supervisor's socket
  if not server then
    if lcode == "EADDRINUSE" then
      cli.say_error("port %d on %s is already in use (EADDRINUSE): stop the other server, or pick another "
        .. "port with --port N (--port 0 picks a free one)", o.port, o.host)
    else
      cli.say_error("%s", lerr)
    end
    return 1
  end
  M.server = server
  local grace = o.grace or M.GRACE_SECONDS
  graceful(server, grace)
  reload.serve(server, o.watch)
  if o.access_log then
    local alog, aerr = log.access(server, o.access_log, o.worker_id)
    if not alog then
      cli.say_error("--access-log: %s", aerr)
      return 1
    end
    M.access_log = alog
  end
  if worker then
    require("tycho.http.metrics").start_probe()
    local wok2, perr = worker.start(o.worker_id, {
      stop = function(mode) drain(server, grace, mode == "lazy") end,
    })
    if not wok2 then
      cli.say_error("--worker-id: no supervisor pipe: %s", perr)
      return 1
    end
    worker.ready(server.port)
    return 0
  end
  io.stderr:write(("listening on http://%s:%d\n"):format(server.host, server.port))
  io.stderr:flush()
  return 0
end

return M
