--- tycho.cli: the command line, run by src/main.c as the main task.
--- `tycho SCRIPT [args]`, `-e CODE`, `-v`, `-h`, `run`, `test`, `repl`.
local core = require "tycho.core"

local M = {}

local USAGE = [==[
usage: tycho [options] [script.lua [args...]]
       tycho run APP.lua [--host HOST] [--port PORT] [run options]
       tycho test [PATH...] [busted options]
       tycho repl
       tycho attach PATH

  script.lua        run a Lua script inside a task (use - for stdin)
  -e CODE           run CODE
  -v, --version     print Tycho, Lua, libuv and llhttp versions
  -h, --help        print this help

  run APP.lua       run APP.lua; if it returns a handler or router, serve it
                    over HTTP (default 127.0.0.1:8080; --port 0 picks a port)
                    run options: --workers N|auto, --grace SECONDS,
                    --access-log PATH|-, --log-level LEVEL, --watch,
                    --repl PATH (docs/operations.md), --block-warn MS
                    (loop watchdog, default 200, 0 off: docs/thread.md),
                    --cpu-limit MS (a handler's cpu per request: 503),
                    --memory-limit MB (Lua memory cap: docs/security.md),
                    --max-body BYTES (request body limit, default 1048576:
                    413 above it), --gzip (gzip text and JSON answers for
                    clients that accept it: docs/http.md)
  test [PATH...]    run busted specs inside the host (default: spec/)
  repl              interactive prompt with the event loop running behind it
  attach PATH       REPL inside the process serving the Unix socket PATH
                    (tycho run APP.lua --repl PATH)
]==]

M.usage = USAGE

local function say_error(fmt, ...)
  io.stderr:write("tycho: ", fmt:format(...), "\n")
end
M.say_error = say_error

---Prints a bad-usage line and returns exit code 2.
---@param fmt string
function M.usage_error(fmt, ...)
  say_error(fmt, ...)
  io.stderr:write("try 'tycho --help' for more information\n")
  return 2
end

-- Levenshtein distance, for "did you mean" on a mistyped option.
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

---" (did you mean --port?)" when `word` is a small typo of one of `known`, else "".
---@param word string
---@param known string[]
function M.did_you_mean(word, known)
  local best, best_d = nil, 3
  for _, k in ipairs(known) do
    local d = distance(word, k)
    if d < best_d then best, best_d = k, d end
  end
  return best and (" (did you mean %s?)"):format(best) or ""
end

-- Lua's "module 'x' not found:" starts a list of every place searched; the
-- first line should say what to do.
local function explain(err)
  return (err:gsub("module '([^']+)' not found:", function(name)
    local file = name:gsub("%.", "/")
    return ("module '%s' not found: create %s.lua (or %s/init.lua) next to the app, "
      .. "or add its folder to package.path; searched:"):format(name, file, file)
  end, 1))
end

local function traceback(err)
  if type(err) == "string" then err = explain(err) end
  if type(err) ~= "string" then
    local mt = getmetatable(err)
    if mt and mt.__tostring then return tostring(err) end
    if mt == nil and type(err) ~= "userdata" then
      err = ("(error object is a %s value)"):format(type(err))
    else
      return err -- os.exit's sentinel passes through untouched
    end
  end
  -- The frames below the user's code are the CLI's own: leave them out.
  local tb = debug.traceback(err, 2)
  return (tb:gsub("\n%s*%[C%]: in function 'xpcall'.*$", ""))
end

---Calls f(...) and reports an error with its traceback; returns ok, results.
function M.protect(f, ...)
  return xpcall(f, traceback, ...)
end

local function report(err)
  if type(err) == "userdata" then error(err, 0) end -- os.exit: keep unwinding
  io.stderr:write("tycho: ", tostring(err), "\n")
  return 1
end

local function run_chunk(chunk, script_args)
  local ok, err = M.protect(chunk, table.unpack(script_args))
  if not ok then return report(err) end
  return 0
end

local function set_arg(argv, script_index)
  local a = {}
  for i = 0, #argv do a[i - script_index] = argv[i] end
  _G.arg = a
  local rest = {}
  for i = script_index + 1, #argv do rest[#rest + 1] = argv[i] end
  return rest
end

---"cannot open x.lua: No such file or directory (relative to DIR: check the path)".
---@param ferr string io.open's message, "PATH: reason"
function M.cannot_open(ferr)
  local uv = require "luv"
  return ("cannot open %s (paths are relative to %s: check the file name and folder)")
    :format(ferr, uv.cwd() or ".")
end

local function load_script(path)
  if path == "-" then
    return load(io.read("a"), "=stdin")
  end
  local f, ferr = io.open(path, "r")
  if not f then return nil, M.cannot_open(ferr), "missing" end
  f:close()
  return loadfile(path)
end

local function run_script(argv, index)
  local path = argv[index]
  local chunk, err, why = load_script(path)
  if not chunk then
    if why == "missing" then return M.usage_error("%s", err) end
    say_error("%s", err)
    return 1
  end
  return run_chunk(chunk, set_arg(argv, index))
end

local function run_code(argv, index)
  local code = argv[index + 1]
  if not code then return M.usage_error("'-e' needs an argument") end
  local chunk, err = load(code, "=(command line)")
  if not chunk then
    say_error("%s", err)
    return 1
  end
  set_arg(argv, index + 1)
  local status = run_chunk(chunk, {})
  if status ~= 0 or not argv[index + 2] then return status end
  return M.dispatch(argv, index + 2)
end

local function print_version()
  local v = core.versions()
  print(("Tycho %s (Lua %s, libuv %s, llhttp %s)"):format(v.tycho, v.lua:gsub("^Lua ", ""),
    v.libuv, v.llhttp))
  return 0
end

local function subcommand(name, argv, index)
  local rest = {}
  for i = index + 1, #argv do rest[#rest + 1] = argv[i] end
  local ok, mod = pcall(require, "tycho.cli_" .. name)
  if not ok then
    if tostring(mod):find("not found", 1, true) then
      return M.usage_error("'%s' is not available in this build", name)
    end
    error(mod, 0)
  end
  return mod.main(rest)
end

local function stdin_is_tty()
  local uv = require "luv"
  return uv.guess_handle(0) == "tty"
end

---Runs the command line from argv[index] on. Returns the exit code.
function M.dispatch(argv, index)
  local a = argv[index]
  if a == nil then
    if stdin_is_tty() then return subcommand("repl", argv, index - 1) end
    return run_script({ [0] = argv[0], "-" }, 1)
  elseif a == "-h" or a == "--help" then
    io.stdout:write(USAGE)
    return 0
  elseif a == "-v" or a == "--version" then
    return print_version()
  elseif a == "-e" then
    return run_code(argv, index)
  elseif a == "run" or a == "test" or a == "repl" or a == "attach" then
    return subcommand(a, argv, index)
  elseif a == "-" then
    return run_script(argv, index)
  elseif a:sub(1, 1) == "-" then
    return M.usage_error("unknown option '%s'%s", a,
      M.did_you_mean(a, { "-e", "-v", "-h", "--version", "--help" }))
  end
  return run_script(argv, index)
end

---Entry point, called by src/main.c with the process's argv.
---@param argv table argv[0] is the program name
---@return integer exit code
function M.main(argv)
  _G.tycho = require "tycho"
  require("tycho.signals").install()
  return M.dispatch(argv, 1)
end

return M
