-- Specs for hot reload (lua/tycho/reload.lua): a real app in a temporary
-- directory, served on 127.0.0.1 port 0, edited on disk while curl talks
-- to it.
local tycho = require "tycho"
local reload = require "tycho.reload"
local support = require "spec.support.net"

local uv = tycho.uv

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- Saves like vim or most IDEs: a new file renamed over the old one.
local function write_atomic(path, text)
  write(path .. ".tmp~", text)
  assert(os.rename(path .. ".tmp~", path))
end

local function curl(url)
  local out, err, code = tycho.process.exec("curl", { "-s", "-S", "--max-time", "10", url })
  assert(out, err)
  assert.are.equal(0, code, "curl failed: " .. tostring(err))
  return out
end

-- An app whose handler answers `body`; `extra` goes before the return.
local function app_source(body, extra)
  return ("%s\nreturn function(req, res) res:send(%q) end\n"):format(extra or "", body)
end

-- An app whose request to `path` waits (bounded) until the persistent
-- table `name` gets .open (setting .entered first), runs the Lua `after`,
-- then answers `body`.
local function gated_app(name, path, after, body)
  return ([[
local gate = tycho.state(%q, function() return {} end)
return function(req, res)
  if req.path == %q then
    gate.entered = true
    for _ = 1, 5000 do
      if gate.open then break end
      tycho.sleep(0.002)
    end
%s
  end
  res:send(%q)
end
]]):format(name, path, after, body)
end

-- A served app: dir, reloader, server, url and the reloader's log lines.
local function serve(files, opts)
  local dir = support.tmpdir("reload")
  for name, text in pairs(files) do write(dir .. "/" .. name, text) end
  local log = {}
  local r = reload.new(dir .. "/app.lua", { log = function(line) log[#log + 1] = line end })
  local handler = assert(r:load())
  local server = assert(tycho.http.serve { port = 0, handler = handler })
  r:attach(server)
  if not (opts and opts.manual) then assert(r:watch()) end
  local app = { dir = dir, r = r, server = server, log = log,
    url = ("http://127.0.0.1:%d"):format(server.port) }
  function app.wait_log(pattern, n)
    support.wait_for(function()
      local seen = 0
      for _, line in ipairs(log) do
        if line:find(pattern) then seen = seen + 1 end
      end
      return seen >= (n or 1)
    end, "a log line matching " .. pattern)
  end
  function app.stop()
    r:close()
    server:close(true)
    server:wait_closed()
    support.rmdir(dir)
  end
  return app
end

describe("hot reload", function()
  local app
  after_each(function()
    if app then app.stop() end
    app = nil
  end)

  it("serves the new handler after the app file is edited", function()
    app = serve { ["app.lua"] = app_source("one") }
    assert.are.equal("one", curl(app.url))
    write(app.dir .. "/app.lua", app_source("two"))
    app.wait_log("^reloaded app%.lua in %d+ ms$")
    assert.are.equal("two", curl(app.url))
    assert.are.equal(2, app.server.generation)
    assert.are.equal(2, app.r.generation)
  end)

  it("tells each request the generation that served it", function()
    local src = "return function(req, res) res:send(%q .. req.generation) end"
    app = serve { ["app.lua"] = src:format("a") }
    assert.are.equal("a1", curl(app.url))
    write(app.dir .. "/app.lua", src:format("b"))
    app.wait_log("^reloaded")
    assert.are.equal("b2", curl(app.url))
  end)

  it("keeps the old handler on a syntax error, logs file:line, and recovers", function()
    app = serve { ["app.lua"] = app_source("good") }
    write(app.dir .. "/app.lua", "return function(req, res)\n  res:send('x'\nend\n")
    app.wait_log("failed")
    assert.matches("app%.lua:3: ", app.log[1])
    assert.matches("generation 1 keeps serving", app.log[1])
    assert.are.equal("good", curl(app.url))
    assert.are.equal(1, app.server.generation)
    write(app.dir .. "/app.lua", app_source("fixed"))
    app.wait_log("^reloaded")
    assert.are.equal("fixed", curl(app.url))
  end)

  it("keeps the old handler when the script raises while it runs", function()
    app = serve { ["app.lua"] = app_source("good") }
    write(app.dir .. "/app.lua", "local x = nil\nlocal y = x.field\nreturn function() end\n")
    app.wait_log("failed")
    assert.matches("app%.lua:2: attempt to index", app.log[1])
    assert.matches("stack traceback", app.log[1])
    assert.are.equal("good", curl(app.url))
  end)

  it("keeps the old handler when the script returns no handler", function()
    app = serve { ["app.lua"] = app_source("good") }
    write(app.dir .. "/app.lua", "return 42\n")
    app.wait_log("failed")
    assert.matches("returned a number, not a handler", app.log[1])
    write(app.dir .. "/app.lua", "local x = 1\n")
    app.wait_log("failed", 2)
    assert.matches("returned no handler", app.log[2])
    assert.are.equal("good", curl(app.url))
  end)

  it("keeps tycho.state tables across reloads", function()
    local src = [[
local hits = tycho.state("reload_spec.hits", function() return { n = 0, inits = 0 } end)
hits.inits = hits.inits + 1
return function(req, res)
  hits.n = hits.n + 1
  res:send(%q .. hits.n)
end
]]
    tycho.state.forget("reload_spec.hits")
    app = serve { ["app.lua"] = src:format("a") }
    assert.are.equal("a1", curl(app.url))
    assert.are.equal("a2", curl(app.url))
    write(app.dir .. "/app.lua", src:format("b"))
    app.wait_log("^reloaded")
    assert.are.equal("b3", curl(app.url))
    assert.are.equal(2, tycho.state("reload_spec.hits").inits)
  end)

  it("lets a request started before the reload finish on the old code", function()
    local function src(body)
      return gated_app("reload_spec.gate", "/slow", ("return res:send(%q)"):format(body .. " slow"), body)
    end
    tycho.state.forget("reload_spec.gate")
    app = serve { ["app.lua"] = src("old") }
    local gate = tycho.state("reload_spec.gate")
    local slow = tycho.spawn(curl, app.url .. "/slow")
    support.wait_for(function() return gate.entered end, "the slow request to start")
    write(app.dir .. "/app.lua", src("new"))
    app.wait_log("^reloaded")
    assert.are.equal("new", curl(app.url))
    gate.open = true
    assert.are.equal("old slow", slow:join())
  end)

  it("reloads a module the app requires when that module changes", function()
    app = serve { ["app.lua"] = app_source("plain") }
    -- The module lives in a subdirectory, created after the first load.
    uv.fs_mkdir(app.dir .. "/lib", tonumber("755", 8))
    write(app.dir .. "/lib/greet.lua", "return { word = 'hello' }\n")
    write(app.dir .. "/app.lua", "local greet = require 'lib.greet'\n"
      .. "return function(req, res) res:send(greet.word .. '!') end\n")
    app.wait_log("^reloaded")
    assert.are.equal("hello!", curl(app.url))
    write(app.dir .. "/lib/greet.lua", "return { word = 'bonjour' }\n")
    app.wait_log("^reloaded", 2)
    assert.are.equal("bonjour!", curl(app.url))
  end)

  it("sees saves that rename a new file over the old one", function()
    app = serve { ["app.lua"] = app_source("before"), ["mod.lua"] = "return 1\n" }
    write_atomic(app.dir .. "/app.lua", app_source("after rename"))
    app.wait_log("^reloaded")
    assert.are.equal("after rename", curl(app.url))
    write_atomic(app.dir .. "/app.lua",
      "local n = require 'mod'\nreturn function(req, res) res:send('mod ' .. n) end\n")
    app.wait_log("^reloaded", 2)
    write_atomic(app.dir .. "/mod.lua", "return 2\n")
    app.wait_log("^reloaded", 3)
    assert.are.equal("mod 2", curl(app.url))
  end)

  it("ignores changes to files the app did not load", function()
    app = serve { ["app.lua"] = app_source("one") }
    -- A second watcher on the same directory sees the event in the same
    -- loop turn as the reloader's: by then the reloader has decided.
    local seen = false
    local w = assert(tycho.fs.watch(app.dir, function(_, name)
      if name == "notes.txt" then seen = true end
    end))
    write(app.dir .. "/notes.txt", "unrelated")
    support.wait_for(function() return seen end, "the notes.txt event")
    w:stop()
    assert.is_nil(app.r.timer) -- no reload was ever scheduled
    write(app.dir .. "/app.lua", app_source("two"))
    app.wait_log("^reloaded")
    assert.are.equal(1, #app.log)
    assert.are.equal("two", curl(app.url))
  end)

  it("runs each generation in a fresh environment", function()
    local src = [[
seen_before = seen_before
local prior = seen_before
seen_before = %q
_G.set_through_G = true
return function(req, res) res:send(tostring(prior)) end
]]
    app = serve { ["app.lua"] = src:format("gen1") }
    assert.are.equal("nil", curl(app.url))
    write(app.dir .. "/app.lua", src:format("gen2"))
    app.wait_log("^reloaded")
    assert.are.equal("nil", curl(app.url))
    assert.is_nil(rawget(_G, "seen_before"))
    assert.is_nil(rawget(_G, "set_through_G"))
  end)

  it("calls on_reload(old_module) hooks of the new modules", function()
    local mod = [[
local M = { version = %d }
function M.on_reload(old)
  tycho.state("reload_spec.hook").seen = old and old.version or "none"
end
return M
]]
    tycho.state.forget("reload_spec.hook")
    app = serve {
      ["app.lua"] = "local m = require 'm'\n"
        .. "return function(req, res) res:send('v' .. m.version) end\n",
      ["m.lua"] = mod:format(1),
    }
    assert.is_nil(tycho.state("reload_spec.hook").seen) -- not on the first load
    write(app.dir .. "/m.lua", mod:format(2))
    app.wait_log("^reloaded")
    assert.are.equal(1, tycho.state("reload_spec.hook").seen)
    assert.are.equal("v2", curl(app.url))
  end)

  it("keeps the old code when an on_reload hook fails", function()
    app = serve { ["app.lua"] = app_source("old") }
    write(app.dir .. "/app.lua", "local h = setmetatable({}, { __call = function(_, req, res)\n"
      .. "  res:send('new') end })\nfunction h.on_reload() error('hook broke') end\nreturn h\n")
    app.wait_log("failed")
    assert.matches("app%.lua:3: hook broke", app.log[1])
    assert.are.equal("old", curl(app.url))
  end)

  it("closes the old code's timers and servers, but not persistent ones", function()
    local src = [[
local keep = tycho.state("reload_spec.keep", function()
  return { ticks = 0, timer = tycho.set_interval(1, function() end) }
end)
local box = tycho.state("reload_spec.box")
box.timer = tycho.set_interval(1, function() end)
box.later = tycho.set_timeout(60000, function() end)
box.server = tycho.http.serve { port = 0, handler = function(req, res) res:send("side") end }
box.keep = keep
return function(req, res) res:send(%q) end
]]
    tycho.state.forget("reload_spec.keep")
    tycho.state.forget("reload_spec.box")
    app = serve { ["app.lua"] = src:format("one") }
    local box = tycho.state("reload_spec.box")
    local old_timer, old_later, old_server = box.timer, box.later, box.server
    assert.is_true(old_timer:is_active())
    assert.is_false(old_server.closed)
    write(app.dir .. "/app.lua", src:format("two"))
    app.wait_log("^reloaded")
    assert.is_false(old_timer:is_active())
    assert.is_false(old_later:is_active())
    assert.is_true(old_server.closed)
    assert.is_true(box.keep.timer:is_active()) -- made in a state init
    assert.is_true(box.timer:is_active())      -- the new generation's own
    assert.are_not.equal(old_timer, box.timer)
    -- Closing the reloader leaves the current generation's objects alone;
    -- stop them here so the spec ends with no live handles.
    app.r.gen:retire()
    assert.is_false(box.timer:is_active())
    box.keep.timer:stop()
    tycho.state.forget("reload_spec.keep")
  end)

  it("lets old code in flight start a timeout but no interval or server", function()
    local function src(body)
      return gated_app("reload_spec.late", "/late", [[
    gate.timeout = tycho.set_timeout(60000, function() end)
    gate.interval = tycho.set_interval(1, function() end)
    gate.server = tycho.http.serve { port = 0, handler = function() end }]], body)
    end
    tycho.state.forget("reload_spec.late")
    app = serve { ["app.lua"] = src("old") }
    local box = tycho.state("reload_spec.late")
    local late = tycho.spawn(curl, app.url .. "/late")
    support.wait_for(function() return box.entered end, "the request to start")
    write(app.dir .. "/app.lua", src("new"))
    app.wait_log("^reloaded")
    box.open = true
    assert.are.equal("old", late:join())
    assert.is_true(box.timeout:is_active())
    assert.is_false(box.interval:is_active())
    assert.is_true(box.server.closed)
    box.timeout:stop()
  end)

  it("coalesces a burst of writes into one reload", function()
    app = serve { ["app.lua"] = app_source("0") }
    for i = 1, 5 do write(app.dir .. "/app.lua", app_source(tostring(i))) end
    app.wait_log("^reloaded")
    assert.are.equal("5", curl(app.url))
    assert.are.equal(1, #app.log)
  end)
end)

describe("reloader:reload()", function()
  local app
  after_each(function()
    if app then app.stop() end
    app = nil
  end)

  it("reloads on demand without a watcher, returning true or nil, err", function()
    app = serve({ ["app.lua"] = app_source("one") }, { manual = true })
    write(app.dir .. "/app.lua", app_source("two"))
    assert.are.equal("one", curl(app.url)) -- no watcher: nothing happened
    assert.is_true(app.r:reload())
    assert.are.equal("two", curl(app.url))
    write(app.dir .. "/app.lua", "return function(\n")
    local ok, err = app.r:reload()
    assert.is_nil(ok)
    assert.matches("app%.lua:2: ", err)
    assert.are.equal("two", curl(app.url))
    assert.are.equal(2, app.r.generation)
  end)

  it("gives the error of a module that fails to load", function()
    app = serve({ ["app.lua"] = app_source("one") }, { manual = true })
    write(app.dir .. "/bad.lua", "local t = {}\nreturn t.x.y\n")
    write(app.dir .. "/app.lua", "require 'bad'\n" .. app_source("two"))
    local ok, err = app.r:reload()
    assert.is_nil(ok)
    assert.matches("bad%.lua:2: attempt to index", err)
  end)

  it("loads system modules once and app modules per generation", function()
    app = serve({
      ["app.lua"] = "local a = require 'tycho.json'\nlocal b = require 'helper'\n"
        .. "tycho.state('reload_spec.mods').json = a\n"
        .. "tycho.state('reload_spec.mods')[#tycho.state('reload_spec.mods') + 1] = b\n"
        .. "return function(req, res) res:send('x') end\n",
      ["helper.lua"] = "return {}\n",
    }, { manual = true })
    assert.is_true(app.r:reload())
    local mods = tycho.state("reload_spec.mods")
    assert.are.equal(require "tycho.json", mods.json)
    assert.are.equal(2, #mods)
    assert.are_not.equal(mods[1], mods[2])
    assert.is_nil(package.loaded.helper)
    tycho.state.forget("reload_spec.mods")
  end)

  it("reports a misuse of a wrapped tycho function at the app's line", function()
    app = serve({ ["app.lua"] = app_source("one") }, { manual = true })
    write(app.dir .. "/app.lua", "\ntycho.set_timeout('soon')\n" .. app_source("two"))
    local ok, err = app.r:reload()
    assert.is_nil(ok)
    assert.matches("app%.lua:2: bad argument #1 to 'set_timeout' %(number expected, got string%)", err)
  end)

  it("runs one reload at a time", function()
    app = serve({ ["app.lua"] = app_source("one") }, { manual = true })
    local gate = tycho.state("reload_spec.busy")
    write(app.dir .. "/app.lua", [[
local gate = tycho.state("reload_spec.busy")
gate.entered = true
for _ = 1, 5000 do
  if gate.open then break end
  tycho.sleep(0.002)
end
]] .. app_source("two"))
    local first = tycho.spawn(function() return app.r:reload() end)
    support.wait_for(function() return gate.entered end, "the app script to start")
    assert.are.same({ nil, "a reload is already running" }, { app.r:reload() })
    gate.open = true
    assert.is_true(first:join())
    assert.are.equal("two", curl(app.url))
    tycho.state.forget("reload_spec.busy")
  end)

  it("reloads a module that registers itself in package.loaded", function()
    local mod = "local M = { word = %q }\npackage.loaded[...] = M\n"
    app = serve({
      ["app.lua"] = "local m = require 'selfreg'\n"
        .. "return function(req, res) res:send(m.word) end\n",
      ["selfreg.lua"] = mod:format("first"),
    }, { manual = true })
    assert.is_nil(package.loaded.selfreg)
    write(app.dir .. "/selfreg.lua", mod:format("second"))
    assert.is_true(app.r:reload())
    assert.are.equal("second", curl(app.url))
    assert.is_nil(package.loaded.selfreg)
  end)

  it("lets retired generations be garbage collected", function()
    app = serve({
      ["app.lua"] = "local h = require 'helper'\n"
        .. "tycho.set_interval(1000, function() end)\n"
        .. "return function(req, res) res:send(h.word) end\n",
      ["helper.lua"] = "return { word = 'w' }\n",
    }, { manual = true })
    local old = setmetatable({}, { __mode = "k" })
    for _ = 1, 20 do
      old[app.r.gen] = true
      assert.is_true(app.r:reload())
    end
    assert.are.equal("w", curl(app.url))
    collectgarbage()
    collectgarbage()
    local alive = 0
    for _ in pairs(old) do alive = alive + 1 end
    assert.are.equal(0, alive)
    app.r.gen:retire() -- the current generation's interval
  end)

  it("refuses to reload an app that is not attached to a server", function()
    local dir = support.tmpdir("reload")
    write(dir .. "/app.lua", app_source("x"))
    local r = reload.new(dir .. "/app.lua")
    assert(r:load())
    assert.are.same({ nil, "no server to reload" }, { r:reload() })
    support.rmdir(dir)
  end)
end)

describe("tycho.reload module", function()
  it("has no app to reload outside tycho run", function()
    assert.is_nil(reload.current)
    assert.are.same({ nil, "no app to reload" }, { reload.reload() })
  end)

  it("names its bad arguments", function()
    assert.has_error(function() reload.new() end,
      "bad argument #1 to 'new' (string expected, got nil)")
    assert.has_error(function() reload.new("app.lua", 1) end,
      "bad argument #2 to 'new' (table expected, got number)")
  end)
end)
