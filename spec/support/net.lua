-- Helpers shared by the networking specs (net, process, signal, dns, fs
-- watch, HTTP client): bounded waits, fd counting and echo servers.
local tycho = require "tycho"
local uv = tycho.uv

local M = {}

---Waits (bounded, giving the loop a turn each time) until pred() holds.
function M.wait_for(pred, what)
  for _ = 1, 5000 do
    if pred() then return end
    tycho.sleep(0.001)
  end
  error("timed out waiting for " .. what, 2)
end

---How many file descriptors this process has open.
function M.open_fds()
  local n = 0
  local req = assert(uv.fs_scandir("/proc/self/fd"))
  while uv.fs_scandir_next(req) do n = n + 1 end
  return n
end

---A fresh temporary directory; remove it with M.rmdir.
function M.tmpdir(tag)
  return assert(uv.fs_mkdtemp("/tmp/tycho-" .. tag .. "-XXXXXX"))
end

function M.rmdir(dir)
  os.execute("rm -rf '" .. dir .. "'")
end

---A line echo server on 127.0.0.1 (or `opts.path`); `stats.conns` counts
---accepted connections and `stats.done` finished handlers.
function M.echo_server(opts)
  local stats = { conns = 0, done = 0 }
  local o = { port = 0, path = opts and opts.path }
  o.handler = function(conn)
    stats.conns = stats.conns + 1
    for line in conn:lines() do conn:write(line .. "\n") end
    stats.done = stats.done + 1
  end
  local srv = assert(tycho.net.listen(o))
  return srv, stats
end

---A listening socket that never accepts, with its queue filled, so that
---the next connect to it hangs (Linux drops SYNs to a full accept queue).
---Returns the port and a function that closes everything.
function M.full_listener()
  local l = uv.new_tcp()
  assert(l:bind("127.0.0.1", 0))
  assert(l:listen(0, function() end)) -- never accepts
  local port = l:getsockname().port
  local fillers = {}
  for _ = 1, 10 do
    local c = tycho.net.connect("127.0.0.1", port, { timeout = 0.05 })
    if not c then break end
    fillers[#fillers + 1] = c
  end
  return port, function()
    for _, c in ipairs(fillers) do c:close() end
    l:close()
  end
end

return M
