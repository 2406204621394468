-- A reverse proxy: every request is forwarded to UPSTREAM with
-- tycho.http.request and the answer is passed back.
--
--   tycho run examples/hello/app.lua --port 8081 &
--   UPSTREAM=http://127.0.0.1:8081 tycho run examples/proxy/app.lua
--   curl -i localhost:8080/json        (answered by the hello app)
--
-- An upstream that is down or too slow gives 502 or 504 with a JSON error.
-- Hop-by-hop headers (Connection, Keep-Alive, Transfer-Encoding, ...) are not
-- forwarded; X-Forwarded-For and Via are added. Bodies stream both ways: the
-- upload goes to the upstream piece by piece as it arrives (req:chunks() as
-- the request body) and the answer comes back the same way, each side
-- waiting for the slower one, so neither is ever held whole in memory. The
-- server's request body limit still applies (1 MiB unless
-- `tycho run --max-body BYTES`).
local tycho = require "tycho"

local UPSTREAM = (tycho.process.env.UPSTREAM or "http://127.0.0.1:8081"):gsub("/+$", "")
local TIMEOUT = 15 -- seconds for the whole upstream exchange

local HOP_BY_HOP = {
  connection = true, ["keep-alive"] = true, ["proxy-authenticate"] = true,
  ["proxy-authorization"] = true, te = true, trailer = true,
  ["transfer-encoding"] = true, upgrade = true, ["content-length"] = true,
  host = true, expect = true, -- this server answered any 100-continue itself
}

local function forwarded_headers(req)
  local out = {}
  for name, value in pairs(req.headers) do
    if not HOP_BY_HOP[name] then out[name] = value end
  end
  local prior = req.headers["x-forwarded-for"]
  out["x-forwarded-for"] = prior and (prior .. ", " .. req.remote_addr) or req.remote_addr
  out["via"] = "1.1 tycho"
  return out
end

-- Whether the request has a body to pass on.
local function has_body(req)
  return req.headers["content-length"] ~= nil or req.headers["transfer-encoding"] ~= nil
end

return function(req, res)
  local headers = forwarded_headers(req)
  -- A known length is passed on as-is; otherwise the upload goes chunked.
  headers["content-length"] = req.headers["content-length"]
  local up <close>, err, code = tycho.http.request {
    url = UPSTREAM .. req.url,
    method = req.method,
    headers = headers,
    body = has_body(req) and req:chunks() or nil,
    timeout = TIMEOUT,
    stream = true,
    decompress = false, -- relay the bytes (and Content-Encoding) as sent
  }
  if not up then
    local status = code == "ETIMEDOUT" and 504 or 502
    return res:json({ error = "upstream " .. UPSTREAM .. ": " .. tostring(err) }, status)
  end
  res:status(up.status)
  -- raw_headers keeps repeated headers (Set-Cookie) apart: one line each.
  local lines = {}
  for i = 1, #up.raw_headers, 2 do
    local name = up.raw_headers[i]:lower()
    if not HOP_BY_HOP[name] and name ~= "date" then
      lines[name] = lines[name] or {}
      table.insert(lines[name], up.raw_headers[i + 1])
    end
  end
  for name, values in pairs(lines) do res:header(name, values) end
  -- With the upstream's length the client gets it too; else chunked.
  local length = up.headers["content-length"]
  if length then res:header("content-length", length) end
  while true do
    local piece, rerr = up:read()
    -- Cut off mid-body: the status is out, so the connection is cut too.
    if rerr then error("upstream " .. UPSTREAM .. ": " .. rerr) end
    if not piece then break end
    res:write(piece)
  end
  res:finish()
end
