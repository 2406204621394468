-- docs/api.md against the live API of the binary: every public function and
-- field of every tycho module (and the methods of the objects they return) is
-- documented, every documented name exists, every function says whether it
-- yields, and lua/types/tycho.lua (generated from api.md) defines them all.
local uv = require "luv"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local root = here .. "/../.."

local function read(path)
  local f = assert(io.open(root .. "/" .. path, "r"))
  local s = f:read("a")
  f:close()
  return s
end

-- Parses api.md into modules, classes, entries and the internal module list.
local function parse_api(text)
  local api = { modules = {}, classes = {}, class_fields = {}, entries = {}, internal = {} }
  local section
  local lines = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  for i, line in ipairs(lines) do
    local class = line:match("^## class (%S+)%s*$")
    local mod = line:match("^## (tycho[%w_.]*)%s*$")
    if class then
      section = { kind = "class", name = class }
      api.classes[class] = {}
    elseif mod then
      section = { kind = "module", name = mod }
      api.modules[mod] = true
    elseif line:match("^## ") then
      section = nil
    end
    local sig = line:match("^### `(.*)`%s*$")
    if sig and section then
      -- "Class:method(", "module.func(" or "module.field: type"
      local name = sig:match("^[%w_.]+:[%w_]+%(") or sig:match("^[%w_.]+")
      name = name:gsub("%($", "")
      local j = i + 1
      while lines[j] == "" do j = j + 1 end
      api.entries[#api.entries + 1] = {
        name = name, sig = sig, section = section,
        is_function = sig:find("(", 1, true) ~= nil,
        yields = (lines[j] or ""):match("^Yields: ") ~= nil,
      }
      if section.kind == "class" then
        local cls, sep, key = name:match("^(%w+)([:.])([%w_]+)$")
        assert(cls == section.name, name .. " outside its class section")
        if sep == ":" then
          api.classes[cls][key] = true
        else
          api.class_fields[cls] = api.class_fields[cls] or {}
          api.class_fields[cls][key] = sig:match("%?%s*$") and "optional" or "required"
        end
      end
    end
  end
  local para = text:match("Internal modules, not part of the API.-\n\n")
  for name in (para or ""):gmatch("`(tycho[%w_.]*)`") do api.internal[name] = true end
  return api
end

local api = parse_api(read("docs/api.md"))

-- The longest documented module that `name` starts with, and the rest.
local function owner_of(name)
  local best
  for mod in pairs(api.modules) do
    if name:sub(1, #mod + 1) == mod .. "." and (not best or #mod > #best) then best = mod end
  end
  return best, best and name:sub(#best + 2)
end

local function public_keys(t, into)
  into = into or {}
  for k in pairs(t) do
    if type(k) == "string" and not k:match("^_") then into[k] = true end
  end
  return into
end

local function methods_of(obj)
  local mt = assert(getmetatable(obj), "no metatable")
  local t = type(mt.methods) == "table" and mt.methods
    or type(mt.__index) == "table" and mt.__index or mt
  return public_keys(t)
end

local function sorted(set)
  local list = {}
  for k in pairs(set) do list[#list + 1] = k end
  table.sort(list)
  return list
end

local function missing(want, have)
  local out = {}
  for k in pairs(want) do if not have[k] then out[#out + 1] = k end end
  table.sort(out)
  return out, objs
end

local function tmpdir()
  local dir = assert(uv.fs_mkdtemp((os.getenv("TMPDIR") or "/tmp") .. "/tycho-api-XXXXXX"))
  return dir
end

-- One live object of each documented class, from real calls.
local function live_classes()
  local http = require "tycho.http"
  local core = require "tycho.http.core"
  local out, closers, objs = {}, {}, {}
  local dir = tmpdir()
  local task = tycho.spawn(function() end)
  out.Task = methods_of(task)
  task:join()
  local timer = tycho.set_timeout(1e6, function() end)
  out.Timer = methods_of(timer)
  timer:stop()
  local f = assert(tycho.fs.open(dir .. "/f.txt", "w"))
  out.File = methods_of(f)
  f:close()
  local w = assert(tycho.fs.watch(dir, function() end))
  out.Watcher = methods_of(w)
  w:stop()
  out.Request = public_keys(core.request_methods)
  out.Response = public_keys(core.response_methods)
  local router = http.router()
  local sse_methods
  router:get("/sse", function(_, res)
    local s = res:sse { heartbeat = false }
    sse_methods = methods_of(s)
    s:close()
  end)
  router:get("/fields", function(req, res)
    -- req and res end with the response: read their fields while it runs.
    local function snapshot(obj, cls)
      local t = {}
      for k in pairs(api.class_fields[cls] or {}) do t[k] = obj[k] end
      return t
    end
    objs.Request, objs.Response = snapshot(req, "Request"), snapshot(res, "Response")
    res:send("ok")
  end)
  router:post("/parts", function(req, res)
    local parts = assert(req:parts())
    out.FormParts, objs.FormParts = methods_of(parts), parts
    for part in parts do
      out.FormPart, objs.FormPart = methods_of(part), part
    end
    res:send("ok")
  end)
  router:websocket("/ws", function(ws) ws:receive() end)
  router:get("/", function(_, res) res:send("hello") end)
  out.Router = methods_of(router)
  local resp = assert(tycho.test.request(router, { path = "/sse" }))
  assert(resp.status == 200, "sse route answered " .. resp.status)
  out.SSE = sse_methods
  assert(tycho.test.request(router, { path = "/fields" }).status == 200)
  assert(tycho.test.request(router, { method = "POST", path = "/parts",
    headers = { ["Content-Type"] = "multipart/form-data; boundary=b" },
    body = '--b\r\nContent-Disposition: form-data; name="f"\r\n\r\nv\r\n--b--\r\n' }).status == 200)
  local server = assert(http.serve { port = 0, handler = router })
  closers[#closers + 1] = function() server:close() end
  out.HttpServer, objs.HttpServer = methods_of(server), server
  local cres = assert(require("tycho.http.client").request {
    url = "http://127.0.0.1:" .. server.port .. "/", stream = true })
  out.ClientResponse, objs.ClientResponse = methods_of(cres), cres
  cres:close()
  local ws = assert(tycho.ws.connect("ws://127.0.0.1:" .. server.port .. "/ws"))
  out.WebSocket, objs.WebSocket = methods_of(ws), ws
  ws:close()
  local ns = assert(tycho.net.listen { port = 0 })
  out.NetServer, objs.NetServer = methods_of(ns), ns
  local conn = assert(tycho.net.connect("127.0.0.1", ns.port))
  out.Stream = methods_of(conn)
  conn:close()
  ns:close()
  local udp = assert(tycho.net.udp {})
  out.Udp = methods_of(udp)
  udp:close()
  local proc = assert(tycho.process.spawn("true", {}))
  out.Process, objs.Process = methods_of(proc), proc
  proc:wait()
  proc:close()
  local sig = tycho.signal.on("SIGUSR2", function() end)
  out.SignalHandler = methods_of(sig)
  sig:stop()
  assert(tycho.fs.write_file(dir .. "/app.lua", "return function(_, res) res:send('a') end"))
  local reloader = tycho.reload.new(dir .. "/app.lua")
  out.Reloader = methods_of(reloader)
  reloader:close()
  local zs <close> = require("tycho.zlib").stream("gzip")
  out.ZlibStream = methods_of(zs)
  for _, close in ipairs(closers) do close() end
  server:wait_closed()
  assert(tycho.fs.unlink(dir .. "/app.lua"))
  assert(tycho.fs.unlink(dir .. "/f.txt"))
  assert(tycho.fs.rmdir(dir))
  return out, objs
end

describe("docs/api.md", function()
  it("lists at least the core of the API (the parser works)", function()
    assert.is_true(api.modules["tycho"] and api.modules["tycho.fs"] and true)
    assert.is_true(api.classes.Router.get)
    assert.is_true(#api.entries > 150)
    assert.is_true(api.internal["tycho.core"])
  end)

  it("classifies every module in the binary as documented or internal", function()
    local names = require("tycho.repl.line").modules()
    for name in pairs(package.preload) do names[#names + 1] = name end
    local unclassified = {}
    for _, name in ipairs(names) do
      if name:match("^tycho") and not api.modules[name] and not api.internal[name] then
        unclassified[#unclassified + 1] = name
      end
    end
    table.sort(unclassified)
    assert.are.same({}, unclassified)
  end)

  it("names only modules that load", function()
    for name in pairs(api.modules) do
      local ok, err = pcall(require, name)
      assert(ok, ("api.md documents module %s, which does not load: %s"):format(name, err))
    end
  end)

  it("documents every public function and field of every documented module", function()
    local documented = {}
    for _, e in ipairs(api.entries) do documented[e.name] = true end
    local undocumented = {}
    for mod in pairs(api.modules) do
      local m = require(mod)
      if type(m) == "table" then
        for key in pairs(public_keys(m)) do
          local v = m[key]
          -- tycho.fs and the like: loaded submodules cached on their parent
          -- (by name: other specs may have reloaded package.loaded entries).
          local sub = mod .. "." .. key
          local is_submodule = type(v) == "table"
            and (api.modules[sub] or api.internal[sub] or package.loaded[sub] == v)
          local is_method = api.classes.Router[key] and mod == "tycho.http.router"
            or api.classes.SSE[key] and mod == "tycho.http.sse"
          if not is_submodule and not is_method and not documented[mod .. "." .. key] then
            undocumented[#undocumented + 1] = mod .. "." .. key
          end
        end
      end
    end
    table.sort(undocumented)
    assert.are.same({}, undocumented)
  end)

  it("names no module function or field that does not exist", function()
    local absent = {}
    for _, e in ipairs(api.entries) do
      if e.section.kind == "module" then
        local v
        if e.section.name == e.name then -- a callable module (tycho.state)
          v = require(e.name)
        else
          local mod, rest = owner_of(e.name)
          assert(mod, "no module section owns " .. e.name)
          v = require(mod)[rest]
        end
        local callable = type(v) == "function"
          or (getmetatable(v) or {}).__call ~= nil
        -- A field typed `T?` may be nil (a counter set on first use).
        local may_be_nil = not e.is_function and e.sig:match("%?%s*$")
        if (v == nil and not may_be_nil) or (e.is_function and not callable) then
          absent[#absent + 1] = e.name
        end
      end
    end
    table.sort(absent)
    assert.are.same({}, absent)
  end)

  it("says for every function whether it yields", function()
    local silent = {}
    for _, e in ipairs(api.entries) do
      if e.is_function and not e.yields then silent[#silent + 1] = e.name end
    end
    assert.are.same({}, silent)
  end)

  it("documents exactly the methods (and only set fields) of each object the API returns", function()
    local report_later
    local live, objs = live_classes()
    -- Documented fields: a required one must be set on the live object.
    for cls, fields in pairs(api.class_fields) do
      local obj = objs[cls]
      if not obj then
        report_later = report_later or {}
        report_later[#report_later + 1] = cls .. ": documented fields with no live object in this spec"
      else
        for k, how in pairs(fields) do
          if how == "required" and obj[k] == nil then
            report_later = report_later or {}
            report_later[#report_later + 1] = cls .. "." .. k .. " is documented but nil"
          end
        end
      end
    end
    -- A router or SSE stream shares its table with its module: the module's
    -- own functions and fields are documented there.
    local shared = { Router = "tycho.http.router", SSE = "tycho.http.sse" }
    local documented = {}
    for _, e in ipairs(api.entries) do documented[e.name] = true end
    for cls, mod in pairs(shared) do
      for k in pairs(live[cls]) do
        if documented[mod .. "." .. k] then live[cls][k] = nil end
      end
    end
    local report = report_later or {}
    for _, cls in ipairs(sorted(api.classes)) do
      local have = live[cls]
      if not have then
        report[#report + 1] = cls .. ": documented class with no live object in this spec"
      else
        for _, m in ipairs(missing(have, api.classes[cls])) do
          report[#report + 1] = cls .. ":" .. m .. " is not documented"
        end
        for _, m in ipairs(missing(api.classes[cls], have)) do
          report[#report + 1] = cls .. ":" .. m .. " is documented but does not exist"
        end
      end
    end
    for cls in pairs(live) do
      if not api.classes[cls] then report[#report + 1] = cls .. ": no class section" end
    end
    table.sort(report)
    assert.are.same({}, report)
  end)
end)

describe("lua/types/tycho.lua", function()
  local types = read("lua/types/tycho.lua")
  -- Blocks separated by blank lines, keyed by the ---@class they declare.
  local class_block = {}
  for block in (types .. "\n\n"):gmatch("(.-)\n\n") do
    local name = block:match("%-%-%-@class ([%w_.]+)")
    if name then class_block[name] = block end
  end

  local function module_var(name)
    local _, dots = name:gsub("%.", "")
    return dots <= 1 and name or (name:gsub("%.", "_"))
  end

  it("is a LuaLS meta file that loads as Lua", function()
    assert.are.equal("---@meta\n", types:sub(1, 9))
    assert.is_truthy(load(types, "=types"))
  end)

  it("defines every function, method and field of docs/api.md", function()
    local undefined = {}
    for _, e in ipairs(api.entries) do
      local ok
      if e.section.kind == "class" and not e.name:find(":", 1, true) then
        ok = (class_block["tycho." .. e.section.name] or ""):find(
          "---@field " .. e.name:match("[%w_]+$") .. " ", 1, true)
      elseif e.section.kind == "class" then
        ok = types:find("\nfunction " .. e.name .. "(", 1, true)
          and (class_block["tycho." .. e.section.name] or ""):find("local " .. e.section.name .. " = {}", 1, true)
      elseif not e.is_function then
        local mod, key = owner_of(e.name)
        ok = (class_block[mod] or ""):find("---@field " .. key .. " ", 1, true)
      elseif api.modules[e.name] and module_var(e.name) == e.name then
        ok = (class_block[e.name] or ""):find("---@overload fun(", 1, true)
      else
        local mod, rest = owner_of(e.name)
        ok = types:find("\nfunction " .. module_var(mod) .. "." .. rest .. "(", 1, true)
      end
      if not ok then undefined[#undefined + 1] = e.name end
    end
    table.sort(undefined)
    assert.are.same({}, undefined)
  end)
end)
