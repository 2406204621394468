--- `tycho test [PATH...] [busted options]`: busted, run inside the host so
--- specs run in a task and may await. Exits with busted's verdict and stops
--- the loop even if a spec left a handle open.
local core = require "tycho.core"

local M = {}

function M.main(args)
  _G.arg = { [0] = "busted" }
  for i, a in ipairs(args) do _G.arg[i] = a end
  local runner = require "busted.runner"
  runner({ standalone = false })
  core.exit(0)
  return 0
end

return M
