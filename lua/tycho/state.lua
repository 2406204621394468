--- tycho.state: tables that outlive hot reloads. `tycho.state(name, init)`
--- returns the value kept under `name`, creating it with `init()` the first
--- time; later calls (from reloaded code too) get the same value back. The
--- module table is callable, so `tycho.state` (resolved lazily through
--- tycho's __index) is both the function and its namespace:
---   local cache = tycho.state("cache", function() return {} end)
--- Timers and servers created while an `init` runs belong to the state, not
--- to the code generation, so a reload does not close them
--- (lua/tycho/reload.lua asks `building()`).
local check = require "tycho.check"

local M = {}

-- The values live in the registry, so they outlive even a second copy of
-- this module (a test runner that unloads package.loaded between files).
local registry = debug.getregistry()
local stores = registry["tycho.state"] or {}
registry["tycho.state"] = stores
-- Coroutines currently inside an init (a counter, as inits may nest).
local building = registry["tycho.state.building"] or setmetatable({}, { __mode = "k" })
registry["tycho.state.building"] = building

-- Counts the current coroutine in or out of an init, also on errors.
local function enter()
  local co = coroutine.running()
  building[co] = (building[co] or 0) + 1
  return setmetatable({}, {
    __close = function()
      local n = building[co] - 1
      building[co] = n > 0 and n or nil
    end,
  })
end

---The persistent value named `name`, created by `init()` (default: an empty
---table) on first use. `init` may await; it must not return nil.
---@param name string
---@param init? fun(): any
---@return any
local function get(name, init)
  check.arg(1, "state", name, "string")
  check.opt(2, "state", init, "function")
  local value = stores[name]
  if value ~= nil then return value end
  if init == nil then
    value = {}
  else
    local _ <close> = enter()
    value = init()
    if value == nil then
      error(("state '%s': init returned nil"):format(name), 2)
    end
    -- Another task may have created it while this init awaited.
    if stores[name] ~= nil then return stores[name] end
  end
  stores[name] = value
  return value
end
M.get = get

---True when `name` holds a value.
---@param name string
---@return boolean
function M.has(name)
  check.arg(1, "has", name, "string")
  return stores[name] ~= nil
end

---Drops the value named `name`: the next `tycho.state(name, init)` calls
---init again.
---@param name string
function M.forget(name)
  check.arg(1, "forget", name, "string")
  stores[name] = nil
end

---True while the calling coroutine runs a state's init.
---@return boolean
function M.building()
  return building[coroutine.running()] ~= nil
end

return setmetatable(M, {
  __call = function(_, name, init) return get(name, init) end,
})
