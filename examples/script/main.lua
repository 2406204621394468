-- A long-running script, not a server: it samples the machine's load and
-- disk use with child processes on a timer, then prints a summary and ends
-- by itself (nothing left pending: no timer, no child).
--
--   tycho examples/script/main.lua [ROUNDS [INTERVAL_MS]]
--   tycho examples/script/main.lua 3 500
--
-- Each round runs `uptime` and `df -P /` concurrently (each in its own task,
-- so one slow command does not delay the other) with a 5 s timeout.
local tycho = require "tycho"
local process = tycho.process

local rounds = math.tointeger(tonumber(arg[1] or "3"))
local interval = math.tointeger(tonumber(arg[2] or "1000"))
if not rounds or rounds < 1 or not interval or interval < 1 then
  io.stderr:write("usage: tycho examples/script/main.lua [ROUNDS>=1 [INTERVAL_MS>=1]]\n")
  os.exit(2)
end

local samples = {}

-- Runs one command and returns its stdout, or raises with its error.
local function run(cmd, args)
  local out, err, code = process.exec(cmd, args, { timeout = 5 })
  if not out then error(("%s: %s"):format(cmd, err), 0) end
  if code ~= 0 then error(("%s exited with %s: %s"):format(cmd, code, err), 0) end
  return out
end

local function sample(round)
  local load_out, disk_out
  local a = tycho.spawn(function() load_out = run("uptime", {}) end)
  local b = tycho.spawn(function() disk_out = run("df", { "-P", "/" }) end)
  a:join()
  b:join()
  local load1 = load_out:match("load averages?:%s*(%d+[%.,]%d+)") -- "1,05" in some locales
  local used = disk_out:match("\n%S+%s+%d+%s+%d+%s+%d+%s+(%d+)%%")
  samples[round] = { load = tonumber(((load1 or ""):gsub(",", "."))), used = tonumber(used) }
  print(("round %d: load %s, / used %s%%"):format(round, load1 or "?", used or "?"))
end

local round = 0
local busy = false
local timer
timer = tycho.set_interval(interval, function()
  -- Each tick runs in a task of its own: while a round still waits for its
  -- commands (a loaded machine), later ticks are skipped, so rounds end in order.
  if busy then return end
  busy = true
  round = round + 1
  if round == rounds then timer:stop() end -- the last tick: nothing keeps the process alive after it
  local ok, err = pcall(sample, round)
  busy = false
  if not ok then error(err, 0) end
  if round == rounds then
    local sum = 0
    for _, s in ipairs(samples) do sum = sum + (s.load or 0) end
    print(("done: %d rounds, mean load %.2f"):format(rounds, sum / rounds))
  end
end)
