-- CPU work off the event loop with tycho.thread.run: the prime count runs
-- on a thread while the loop keeps answering other requests.
--
--   tycho run examples/offload/app.lua
--   curl -s 'localhost:8080/primes?below=10000000'  (a second or two of CPU)
--   curl -s localhost:8080/ping                     (answers at once meanwhile)
--   curl -s 'localhost:8080/primes-inline?below=10000000'  (blocks the loop:
--        /ping waits, and the loop watchdog logs a warning)
local tycho = require "tycho"

local MAX = 10000000 -- the sieve takes about 8 bytes per number

-- Primes below `below`, by a sieve over the odd numbers (slot k is 2k+1).
-- No upvalues (only globals), so it can be copied to a thread.
local function count_primes(below)
  if below < 3 then return 0 end
  local half = (below - 1) // 2 -- odd numbers 3 .. below-1 are slots 1 .. half
  local composite = {}
  for k = 1, half do composite[k] = false end
  local count = 1 -- 2
  for k = 1, half do
    if not composite[k] then
      count = count + 1
      local p = 2 * k + 1
      for j = (p * p - 1) // 2, half, p do composite[j] = true end
    end
  end
  return count
end

local app = tycho.http.router()

local function limit(req, res)
  local below = math.tointeger(tonumber(req.query.below or "1000000"))
  if not below or below < 0 or below > MAX then
    res:json({ error = ("below must be an integer from 0 to %d"):format(MAX) }, 400)
    return nil
  end
  return below
end

app:get("/primes", function(req, res)
  local below = limit(req, res)
  if not below then return end
  local started = tycho.hrtime()
  local n = tycho.thread.run(count_primes, below) -- this task waits, the loop does not
  return { below = below, primes = n, ms = (tycho.hrtime() - started) // 1000000 }
end)

app:get("/primes-inline", function(req, res)
  local below = limit(req, res)
  if not below then return end
  return { below = below, primes = count_primes(below) }
end)

app:get("/ping", function() return "pong" end)

return app
