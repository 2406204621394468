--- `tycho run APP.lua [--host H] [--port N]`: runs the app script; when it
--- returns a handler (function or router), serves it until SIGINT/SIGTERM,
--- which stop accepting, let requests in flight finish, and exit 0.
local core = require "tycho.core"
local cli = require "tycho.cli"
local signals = require "tycho.signals"

local M = {}

M.GRACE_SECONDS = 10
M.BLOCK_WARN_MS = 200 -- `--block-warn` default; 0 turns the watchdog off

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
    elseif a == "--block-warn" then -- loop watchdog (src/thread/watchdog.c)
      local v = args[i + 1]
      local n = math.tointeger(tonumber(v or ""))
      if not n or n < 0 then
        return nil, v and ("bad value '%s' for --block-warn"):format(v) or "'--block-warn' needs a value"
      end
      o.block_warn = n
      i = i + 1
    elseif a:sub(1, 1) == "-" then
      return nil, ("unknown option '%s' for 'run'"):format(a)
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

-- First signal: stop accepting and drain; a second one, or the grace
-- period running out, ends the process at once.
local function graceful(server, grace)
  local stopping = false
  signals.take(function(signame)
    if signame ~= "SIGINT" and signame ~= "SIGTERM" then return false end
    if stopping then
      core.exit(signame == "SIGINT" and 130 or 143)
      return true
    end
    stopping = true
    server:close()
    tycho.set_timeout(grace * 1000, function() core.exit(0) end):unref()
    tycho.spawn(function()
      server:wait_closed()
      core.exit(0)
    end)
    return true
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
  local wok, werr = require("tycho.thread").watchdog { ms = o.block_warn or M.BLOCK_WARN_MS }
  if not wok then cli.say_error("--block-warn: %s", werr) end
  local arg = { [0] = o.app }
  for i, a in ipairs(o.script_args) do arg[i] = a end
  _G.arg = arg
  if o.repl then -- a REPL into this process, for `tycho attach PATH`
    local repl, rerr = require("tycho.repl.server").listen(o.repl)
    if not repl then
      cli.say_error("--repl %s: %s", o.repl, rerr)
      return 1
    end
    M.repl = repl
  end
  -- Loaded as a reload generation, so SIGHUP and --watch can swap it.
  local reload = require "tycho.reload"
  local handler, code = reload.start(o.app, o.script_args)
  if code ~= 0 then return code end
  if handler == nil then return 0 end -- a plain script: the loop runs on
  local http = require "tycho.http"
  if not http.as_handler(handler) then
    cli.say_error("%s returned a %s: return a handler function or a router", o.app, type(handler))
    return 1
  end
  local server, lerr = http.serve { host = o.host, port = o.port, handler = handler }
  if not server then
    cli.say_error("%s", lerr)
    return 1
  end
  M.server = server
  graceful(server, o.grace or M.GRACE_SECONDS)
  reload.serve(server, o.watch)
  io.stderr:write(("listening on http://%s:%d\n"):format(server.host, server.port))
  io.stderr:flush()
  return 0
end

return M
