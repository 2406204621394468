-- fuzz_router.lua: the Lua half of fuzz_router.c. Builds a router from the
-- fuzzer's input and checks what must hold whatever the patterns and paths:
-- a pattern is accepted or refused with "bad route pattern"; every accepted
-- pattern is found again when requested as a path; find never raises;
-- params are strings; handle answers exactly once (route, 404 or 405+Allow).
local Router = require "tycho.http.router"
local METHODS = { "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS" }

local function fake_res()
  local res = { sent = 0, headers = {} }
  function res:status(code) self.code = code; return self end
  function res:header(k, v) self.headers[k] = v; return self end
  function res:send(body) self.sent = self.sent + 1; self.body = body end
  return res
end

return function(input)
  local lines = {}
  for line in (input .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local r = Router.new()
  local added = {}
  local mw = (#input % 3 == 0)
  if mw then r:use(function(_, _, next_step) return next_step() end) end
  for i, line in ipairs(lines) do
    local method = METHODS[(i - 1) % #METHODS + 1]
    local fn = function(_, res) res:send("route " .. i) end
    local ok, err = pcall(r.route, r, method, line, fn)
    if ok then
      added[#added + 1] = { method, line }
    elseif not tostring(err):find("bad route pattern", 1, true) then
      error("route(" .. method .. ", " .. ("%q"):format(line) .. ") raised: " .. tostring(err))
    end
  end
  for _, a in ipairs(added) do
    local fn, params = r:find(a[1], a[2])
    if type(fn) ~= "function" then
      error(("added %s %q but find does not return it"):format(a[1], a[2]))
    end
    for k, v in pairs(params or {}) do
      if type(k) ~= "string" or type(v) ~= "string" then error("non-string param") end
    end
  end
  for i, line in ipairs(lines) do
    local method = METHODS[i % #METHODS + 1]
    local req = { method = method, path = line }
    local res = fake_res()
    r:handle(req, res)
    if res.sent ~= 1 then error("handle answered " .. res.sent .. " times") end
    if res.code == 405 and not res.headers.Allow then error("405 without Allow") end
  end
end
