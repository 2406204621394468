--- tycho.dns: name resolution through libuv's thread pool (getaddrinfo and
--- getnameinfo), awaiting in the calling task.
local core = require "tycho.core"
local uv = require "luv"
local check = require "tycho.check"

local token, park, wake = core.token, core.park, core.wake

local M = {}

local function fail(err)
  return nil, err, tostring(err):match("^(%u[%u%d_]*):") or "EAI_FAIL"
end

local FAMILIES = { inet = "inet", inet6 = "inet6", ipv4 = "inet", ipv6 = "inet6" }

---True when `host` is a numeric IPv4 or IPv6 address (no lookup needed).
---@param host string
function M.is_ip(host)
  if host:match("^%d+%.%d+%.%d+%.%d+$") then return true end
  return host:find(":", 1, true) ~= nil and host:match("^[%x:.]+$") ~= nil
end

---Resolves `host` to its addresses: a list of strings such as "127.0.0.1"
---and "::1", without duplicates, in the resolver's order. `opts.family`
---("inet" or "inet6") restricts the result. Yields.
---@param host string
---@param opts? {family?: string}
---@return string[]? addresses, string? err, string? code
function M.resolve(host, opts)
  check.arg(1, "resolve", host, "string")
  check.opt(2, "resolve", opts, "table")
  local hints = { socktype = "stream" }
  if opts and opts.family then
    hints.family = FAMILIES[opts.family]
    if not hints.family then
      error("bad argument #2 to 'resolve' (family must be 'inet' or 'inet6')", 2)
    end
  end
  local co, tok = token()
  local req, err = uv.getaddrinfo(host, nil, hints, function(gerr, res)
    wake(co, tok, gerr, res)
  end)
  if not req then return fail(err) end
  local gerr, res = park(function() req:cancel() end)
  if gerr then return fail(gerr) end
  local out, seen = {}, {}
  for _, a in ipairs(res or {}) do
    if not seen[a.addr] then
      seen[a.addr] = true
      out[#out + 1] = a.addr
    end
  end
  if #out == 0 then return fail("EAI_NONAME: no address for " .. host) end
  return out
end

---The host name for an IP address (reverse lookup). Yields.
---@param addr string
---@return string? name, string? err, string? code
function M.reverse(addr)
  check.arg(1, "reverse", addr, "string")
  if not M.is_ip(addr) then
    error("bad argument #1 to 'reverse' (IP address expected, got '" .. addr .. "')", 2)
  end
  local co, tok = token()
  local req, err = uv.getnameinfo({ ip = addr }, function(gerr, name)
    wake(co, tok, gerr, name)
  end)
  if not req then return fail(err) end
  local gerr, name = park(function() req:cancel() end)
  if gerr then return fail(gerr) end
  return name
end

return M
