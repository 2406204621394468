--- tycho.http.health: liveness and readiness handlers for load balancers
--- and Kubernetes-style probes.
---   app:get("/livez", tycho.http.live())    200 while the event loop turns
---   app:get("/readyz", tycho.http.ready())  200 when it should get traffic,
---                                           503 while draining or when the
---                                           app's own check says no
--- Liveness answers from the loop itself, so a wedged loop (a handler
--- spinning in Lua) fails it. Readiness turns 503 as soon as a graceful
--- stop starts (SIGTERM, a rolling restart), so a balancer takes the
--- process out before its listener closes.
local check = require "tycho.check"

local M = {}

M.draining = false -- set by `tycho run` when a graceful stop starts

---A liveness handler: always 200 "ok".
function M.live()
  return function(req, res)
    res:header("Cache-Control", "no-store")
    res:send("ok\n")
  end
end

---A readiness handler: 200 "ready", or 503 while draining or when
---`ready_check()` returns false (or raises).
---@param ready_check? fun(): boolean
function M.ready(ready_check)
  if ready_check ~= nil then check.arg(1, "ready", ready_check, "function") end
  return function(req, res)
    res:header("Cache-Control", "no-store")
    local ok = not M.draining
    if ok and ready_check then
      local pok, r = pcall(ready_check)
      ok = pok and r ~= false and r ~= nil
    end
    if ok then return res:send("ready\n") end
    res:status(503)
    res:send(M.draining and "draining\n" or "not ready\n")
  end
end

return M
