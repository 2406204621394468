-- fuzz_conn.lua: the Lua half of fuzz_conn.c. Returns start(fd): serves one
-- in-process connection on fd through the real connection code, with small
-- limits so the fuzzer reaches them, and a handler that touches every
-- request field and several ways to answer (body, chunks, streaming, JSON,
-- errors, no-body statuses).
local http = require "tycho.http" -- installs the return-value hook
local core = require "tycho.http.core"

local limits = {
  max_header_bytes = 1024, max_headers = 16, max_body_bytes = 4096,
}

local function handler(req, res)
  local p = req.path
  local _ = req.method, req.url, req.raw_path, req.query, req.headers,
    req.http_version, req:header("content-type"), req.remote_addr
  if p == "/body" then return req:body() or "" end
  if p == "/chunks" then
    local n = 0
    for c in req:chunks() do n = n + #c end
    return tostring(n)
  end
  if p == "/stream" then
    res:header("X-Q", next(req.query) or "none")
    res:write("a")
    res:write(req.url)
    return
  end
  if p == "/finish" then return res:finish("done") end
  if p == "/json" then return { q = req.query, h = req.headers } end
  if p == "/204" then return 204 end
  if p == "/304" then return 304, { ETag = "x" }, "" end
  if p == "/redirect" then return res:redirect("/x") end
  if p == "/raise" then error("handler failure for the fuzzer") end
  if p == "/bad" then return true end
  if p == "/header" then
    local ok = pcall(res.header, res, req.headers["x-name"] or "x", req.headers["x-value"] or "")
    return ok and "set" or "refused"
  end
  return "hello " .. #p
end

return function(fd)
  return core.inject(handler, fd, limits)
end
