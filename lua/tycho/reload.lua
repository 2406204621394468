--- tycho.reload: hot reload of an app script inside the running process.
---
--- Each load of the app is a *generation*: the script and every module it
--- requires from its own directory tree run in a fresh environment (their
--- own globals, their own `require` cache), while system and embedded
--- modules (`tycho.*`, luv, anything outside the app's tree) are shared.
--- A generation's `tycho` is a thin proxy that records the timers and
--- servers its code creates; when a newer generation takes over they are
--- closed, except those created inside a `tycho.state` init.
---
--- A reload either swaps everything (server:set_handler, old scope
--- retired) or nothing: a syntax error, an error while the script runs, a
--- missing handler or a failing on_reload hook leave the old generation
--- serving. `tycho run --watch` watches the files with libuv fs events
--- (directories, so rename-over saves are seen), SIGHUP reloads, and the
--- REPL calls `require("tycho.reload").reload()`.
local core = require "tycho.core"
local uv = require "luv"
local check = require "tycho.check"
local state = require "tycho.state"
local protect = require("tycho.cli").protect -- xpcall with a traceback

local M = {}

-- Editors save in several steps (truncate then write, write a temporary
-- then rename it over): wait this long after the last event.
M.DEBOUNCE_MS = 10

local LOADING = setmetatable({}, { __tostring = function() return "loading" end })

-- ---------------------------------------------------------------------
-- Paths

local function dirname(path)
  local dir = path:match("^(.*)/[^/]*$")
  if dir == "" then return "/" end
  return dir or "."
end

local function basename(path)
  return path:match("([^/]*)$")
end

-- The absolute path of `path`, its directory resolved (the file itself
-- may be a symlink or about to be replaced, so it is not resolved).
local function absolute(path)
  local dir = uv.fs_realpath(dirname(path))
  if not dir then return nil end
  return (dir == "/" and "" or dir) .. "/" .. basename(path)
end

local function inside(root, path)
  return path:sub(1, #root + 1) == root .. "/"
end

-- ---------------------------------------------------------------------
-- A generation: environment, module cache, and what its code created

local Generation = {
  closers = {
    timer = function(t) t:stop() end,
    server = function(s) if not s.closed then s:close() end end,
  },
}
Generation.__index = Generation

---Records a timer or server created by this generation's code.
function Generation:own(obj, kind)
  if state.building() then return end -- it belongs to a persistent state
  if self.retired then
    -- Old code still running after the swap (a request in flight) may
    -- start a timeout, which ends by itself; nothing longer-lived.
    if not self.oneshot[obj] then self.closers[kind](obj) end
    return
  end
  self.objects[obj] = kind
end

---Closes the timers and servers this generation created.
function Generation:retire()
  self.retired = true
  for obj, kind in pairs(self.objects) do
    self.objects[obj] = nil
    self.closers[kind](obj)
  end
end

-- Strips the position a wrapped function's error got, so error() can put
-- the app's own call site there.
local function rethrow(err)
  if type(err) ~= "string" then error(err, 0) end
  error((err:gsub("^[^\n:]+:%d+: ", "", 1)), 3)
end

-- Wraps a constructor so what it returns is owned by the generation.
local function owning(gen, fn, kind, oneshot)
  return function(...)
    local ok, obj, err, code = pcall(fn, ...)
    if not ok then rethrow(obj) end
    if obj then
      if oneshot then gen.oneshot[obj] = true end
      gen:own(obj, kind)
    end
    return obj, err, code
  end
end

-- A table reading through to `real` (caching what it reads), with some
-- fields replaced.
local function proxy(real, fields)
  return setmetatable(fields, {
    __index = function(t, k)
      local v = real[k]
      if v ~= nil then rawset(t, k, v) end
      return v
    end,
  })
end

local function http_proxy(gen)
  local http = require "tycho.http"
  return proxy(http, { serve = owning(gen, http.serve, "server") })
end

local function tycho_proxy(gen)
  local tycho = require "tycho"
  local fields = {
    set_timeout = owning(gen, tycho.set_timeout, "timer", true),
    set_interval = owning(gen, tycho.set_interval, "timer"),
  }
  return setmetatable(fields, {
    __index = function(t, k)
      local v
      if k == "http" then v = gen:require("tycho.http") else v = tycho[k] end
      if v ~= nil then rawset(t, k, v) end
      return v
    end,
  })
end

-- Where module `name` lives if it belongs to the app: found on the app's
-- own path (ROOT/?.lua, ROOT/?/init.lua) or on package.path inside ROOT.
-- System names and modules the process already loaded are never the app's.
local function app_module_path(gen, name)
  if name == "tycho" or name:find("^tycho%.") or name == "luv" then return nil end
  if package.loaded[name] ~= nil or package.preload[name] then return nil end
  local path = package.searchpath(name, gen.search_path)
  if not path then
    path = package.searchpath(name, package.path)
    if path then path = absolute(path) end
    if path and not inside(gen.root, path) then return nil end
  end
  return path and absolute(path)
end

---The generation's `require`: app modules load fresh into its own cache,
---the rest comes from the shared package.loaded.
function Generation:require(name)
  local value = self.loaded[name]
  if value == LOADING then
    error(("loop or previous error loading module '%s'"):format(name), 2)
  elseif value ~= nil then
    return value
  end
  if name == "tycho.http" then
    value = http_proxy(self)
    self.loaded[name] = value
    return value
  end
  local path = app_module_path(self, name)
  if not path then
    local ok, shared = pcall(require, name)
    if ok then return shared end
    -- A missing module: point at the app's line that required it.
    -- (raised through pcall, Lua's message has no position of its own)
    local missing = type(shared) == "string" and shared:find("^module '") and shared
    if not missing then error(shared, 0) end
    for level = 2, 12 do
      local info = debug.getinfo(level, "Sl")
      if not info then break end
      if info.currentline > 0 and not info.source:find("lua/tycho/", 1, true) then
        missing = ("%s:%d: %s"):format(info.short_src, info.currentline, missing)
        break
      end
    end
    error(missing, 0)
  end
  self.files[#self.files + 1] = path
  local chunk, err = loadfile(path, "bt", self.env)
  if not chunk then error(err, 0) end
  self.loaded[name] = LOADING
  local _ <close> = setmetatable({}, {
    __close = function(_, e) if e ~= nil then self.loaded[name] = nil end end,
  })
  value = chunk(name, path)
  -- A module that registers itself (package.loaded[...] = M) must not
  -- become a shared module that later generations would never reload.
  local registered = package.loaded[name]
  if registered ~= nil then
    package.loaded[name] = nil
    if value == nil then value = registered end
  end
  if value == nil then value = true end
  self.loaded[name] = value
  self.modules[#self.modules + 1] = name
  return value, path
end

local function new_generation(app)
  local gen = setmetatable({
    root = app.root,
    search_path = app.root .. "/?.lua;" .. app.root .. "/?/init.lua",
    loaded = {},  -- app module name -> value
    modules = {}, -- app module names in load order
    files = {},   -- every file this generation loaded (watched)
    objects = setmetatable({}, { __mode = "k" }),
    oneshot = setmetatable({}, { __mode = "k" }),
  }, Generation)
  gen.tycho = tycho_proxy(gen)
  local env = {}
  for k, v in pairs(_G) do env[k] = v end
  env._G, env.tycho = env, gen.tycho
  env.require = function(name)
    check.arg(1, "require", name, "string")
    return gen:require(name)
  end
  gen.env = setmetatable(env, { __index = _G })
  gen.loaded.tycho = gen.tycho
  return gen
end

-- ---------------------------------------------------------------------
-- Loading a generation

-- On a reload, calls the on_reload(old_module) hooks of the new
-- generation's modules (old_module nil for a module new in this
-- generation), and that of a handler table with one (given the old handler).
local function run_hooks(gen, old, handler)
  for _, name in ipairs(gen.modules) do
    local mod = gen.loaded[name]
    if type(mod) == "table" and type(rawget(mod, "on_reload")) == "function" then
      mod.on_reload(old.loaded[name])
    end
  end
  if type(handler) == "table" and type(rawget(handler, "on_reload")) == "function" then
    handler.on_reload(old.handler)
  end
end

-- Loads and runs the app in a new generation. Returns the generation (its
-- handler in .handler, as a function in .fn), or nil, message, the failed
-- generation (retired). A first load (`old` false) may return no handler:
-- a plain script. os.exit's sentinel propagates.
local function load_generation(app, old)
  local gen = new_generation(app)
  gen.files[1] = app.abs
  -- Read by absolute path (the app may chdir), named as the user gave it.
  local f, oerr = io.open(app.abs, "rb")
  if not f then return nil, oerr, gen end
  local source = f:read("a")
  f:close()
  local chunk, err = load(source, "@" .. app.path, "bt", gen.env)
  if not chunk then return nil, err, gen end
  local ok, handler = protect(chunk, table.unpack(app.args))
  if ok and handler == nil then
    if old == false then return gen end
    ok, handler = false, app.path .. ": returned no handler (return a function or a router)"
  end
  local fn = ok and require("tycho.http").as_handler(handler)
  if ok and not fn then
    ok, handler = false, ("%s: returned a %s, not a handler"):format(app.path, type(handler))
  end
  if ok then
    gen.handler, gen.fn = handler, fn
    if old then ok, err = protect(run_hooks, gen, old, handler) end
    if not ok then handler = err end
  end
  if not ok then
    gen:retire()
    if type(handler) == "userdata" then error(handler, 0) end -- os.exit
    return nil, tostring(handler), gen
  end
  return gen
end

-- ---------------------------------------------------------------------
-- The reloader

local Reloader = {}
Reloader.__index = Reloader

---A reloader for the app script at `path`. Options: `args` (the script's
---arguments), `log` (fn(line), default: stderr).
---@param path string
---@param opts? table
---@return table reloader
function M.new(path, opts)
  check.arg(1, "new", path, "string")
  check.opt(2, "new", opts, "table")
  opts = opts or {}
  local abs = absolute(path)
  local app = {
    path = path,
    name = basename(path),
    abs = abs or path,
    root = abs and dirname(abs) or dirname(path),
    args = opts.args or {},
    log = opts.log or function(line)
      io.stderr:write(line, "\n")
      io.stderr:flush()
    end,
    dirs = {}, -- watched directory -> { handle, names }
    generation = 0,
  }
  return setmetatable(app, Reloader)
end

---Loads the app the first time. Returns its handler (function or router),
---or nil and the error message. A script that returns nothing loads fine
---(handler nil, no message): it is a plain script.
---@return any handler, string? err
function Reloader:load()
  local gen, err = load_generation(self, false)
  if not gen then return nil, err end
  self.gen, self.files = gen, gen.files
  return gen.handler
end

---Serves this reloader's app on `server`: reloads swap its handler.
---@param server userdata from tycho.http.serve
function Reloader:attach(server)
  self.server = server
  self.generation = server.generation
end

local function merge(a, b)
  local seen, out = {}, {}
  for _, list in ipairs { a, b } do
    for _, f in ipairs(list) do
      if not seen[f] then seen[f], out[#out + 1] = true, f end
    end
  end
  return out
end

---Loads the app again and, if that works, makes it serve new requests.
---Returns true, or nil and the error (the old generation keeps serving).
---Yields (the script may await).
---@return true? ok, string? err
function Reloader:reload()
  if not self.server then return nil, "no server to reload" end
  if self.busy then
    self.pending = true
    return nil, "a reload is already running"
  end
  self.busy = true
  local _ <close> = setmetatable({}, { __close = function() self.busy = false end })
  local t0 = core.hrtime()
  local gen, err, failed = load_generation(self, self.gen)
  if not gen then
    -- Watch what the failed attempt touched too: the fix may be there.
    self:watch_files(merge(self.files, failed.files))
    self.log(("tycho: reload of %s failed, generation %d keeps serving:\n%s")
      :format(self.name, self.generation, err))
    return nil, err
  end
  if self.server.closed then
    gen:retire()
    return nil, "server is closed"
  end
  local old = self.gen
  self.generation = self.server:set_handler(gen.fn)
  self.gen, self.files = gen, gen.files
  if old then old:retire() end
  self:watch_files(gen.files)
  self.log(("reloaded %s in %d ms"):format(self.name, (core.hrtime() - t0 + 500000) // 1000000))
  return true
end

-- ---------------------------------------------------------------------
-- Watching

-- Runs a reload once the events stop for DEBOUNCE_MS, one at a time.
function Reloader:changed()
  if not self.timer then
    self.timer = uv.new_timer()
    self.timer:unref()
  end
  self.timer:start(M.DEBOUNCE_MS, 0, function()
    local f = io.open(self.abs, "rb")
    local size = f and f:seek("end")
    if f then f:close() end
    -- Missing or empty: an editor is in the middle of writing it.
    if not size or size == 0 then return end
    core.spawn(function()
      self:reload()
      if self.pending then
        self.pending = false
        self:changed()
      end
    end)
  end)
end

-- Starts a watcher on `dir`; nil, message if that fails.
function Reloader:watch_dir(dir, names)
  local h = uv.new_fs_event()
  local ok, err = h:start(dir, {}, function(werr, filename)
    if werr or not filename then return end
    local entry = self.dirs[dir]
    if entry and entry.names[filename] then self:changed() end
  end)
  if not ok then
    h:close()
    return nil, err
  end
  h:unref()
  self.dirs[dir] = { handle = h, names = names }
  return true
end

-- Watches exactly the directories holding `files`, filtering by name.
function Reloader:watch_files(files)
  if not self.watching then return end
  local wanted = {}
  for _, f in ipairs(files) do
    local d = dirname(f)
    wanted[d] = wanted[d] or {}
    wanted[d][basename(f)] = true
  end
  for dir, entry in pairs(self.dirs) do
    if not wanted[dir] then
      entry.handle:close()
      self.dirs[dir] = nil
    end
  end
  for dir, names in pairs(wanted) do
    if self.dirs[dir] then
      self.dirs[dir].names = names
    else
      local ok, err = self:watch_dir(dir, names)
      if not ok then self.log(("tycho: cannot watch %s: %s"):format(dir, err)) end
    end
  end
end

---Watches the app file and its modules; each save reloads.
---@return true
function Reloader:watch()
  self.watching = true
  self:watch_files(self.files or { self.abs })
  return true
end

---Stops watching (the app keeps serving); idempotent.
function Reloader:close()
  self.watching = false
  for dir, entry in pairs(self.dirs) do
    entry.handle:close()
    self.dirs[dir] = nil
  end
  if self.timer then
    self.timer:close()
    self.timer = nil
  end
  if self.untake then
    self.untake()
    self.untake = nil
  end
end

---Reloads on SIGHUP.
function Reloader:take_sighup()
  self.untake = require("tycho.signals").take(function(signame)
    if signame ~= "SIGHUP" then return false end
    core.spawn(function() self:reload() end)
    return true
  end)
end

-- ---------------------------------------------------------------------
-- The process's app (tycho run)

---Loads the app of `tycho run` (printing errors as the CLI does); returns
---its handler and an exit code. The reloader becomes M.current.
function M.start(path, args)
  local cli = require "tycho.cli"
  local f, ferr = io.open(path, "r")
  if not f then return nil, cli.usage_error("%s", cli.cannot_open(ferr)) end
  f:close()
  local r = M.new(path, { args = args })
  local handler, err = r:load()
  if err then
    -- Only a compile error is "file:line: message" with no traceback.
    local syntax = not err:find("\nstack traceback:", 1, true) and err:find("^.-:%d+: ")
    cli.say_error(syntax and "%s (a syntax error: fix that line, then run again)" or "%s", err)
    return nil, 1
  end
  M.current = r
  return handler, 0
end

---After `tycho run` serves the app: reload on SIGHUP, and on every save
---with `watch`.
function M.serve(server, watch)
  local r = M.current
  r:attach(server)
  r:take_sighup()
  if watch then r:watch() end
end

---Reloads the process's app (the REPL's `.reload`). Returns true, or nil
---and the error. Yields.
---@return true? ok, string? err
function M.reload()
  if not M.current or not M.current.server then return nil, "no app to reload" end
  return M.current:reload()
end

return M
