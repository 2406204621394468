-- An app module: reloaded with the app when either file is saved.
local M = {}

function M.text()
  return "Hello"
end

return M
