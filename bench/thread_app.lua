-- The app of bench/thread.sh: GET / answers at once; GET /work runs about
-- WORK_ITERS iterations of integer hashing, on a thread (MODE=offload,
-- through tycho.thread.run) or on the event loop itself (MODE=inline).
local iters = math.tointeger(tonumber(os.getenv("WORK_ITERS") or "")) or 3000000
local offload = (os.getenv("MODE") or "offload") == "offload"

-- FNV-1a over the bytes of the counter, kept in 32 bits.
local function hash_work(n)
  local h = 2166136261
  for i = 1, n do
    h = ((h ~ (i & 0xff)) * 16777619) & 0xffffffff
  end
  return h
end

return function(req, res)
  if req.path == "/work" then
    local h = offload and tycho.thread.run(hash_work, iters) or hash_work(iters)
    return res:send(string.format("%08x", h))
  end
  if req.path == "/calibrate" then
    local t0 = tycho.hrtime()
    hash_work(iters)
    return res:send(string.format("%.1f", (tycho.hrtime() - t0) / 1e6))
  end
  res:send("Hello, World!")
end
