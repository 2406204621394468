--- tycho.signals: what SIGINT, SIGTERM and SIGHUP mean to the process.
--- Components push a taker (a server's graceful stop, the REPL's cancel);
--- the newest taker that returns true handles the signal. Without one,
--- SIGINT and SIGTERM end the process cleanly (exit 130 / 143).
local core = require "tycho.core"

local M = {}
local takers = {}

---Adds fn(signame) -> handled; returns a function that removes it.
---@param fn fun(signame: string): boolean
---@return function remove
function M.take(fn)
  takers[#takers + 1] = fn
  return function()
    for i = #takers, 1, -1 do
      if takers[i] == fn then table.remove(takers, i) break end
    end
  end
end

local function dispatch(signame)
  for i = #takers, 1, -1 do
    if takers[i](signame) then return true end
  end
  return false
end

function M.install()
  core.set_signal_hook(dispatch)
end

return M
