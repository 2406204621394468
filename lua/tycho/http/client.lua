--- tycho.http.client: an HTTP/1.1 client over tycho.net, with responses
--- parsed by llhttp in C (src/http/client_parser.c). Keep-alive connections
--- are pooled per host:port; chunked and read-until-close bodies, opt-in
--- bounded redirects, streamed request and response bodies,
--- connect/total timeouts, and gzip/deflate answers decoded (tycho.zlib).
--- Only http:// URLs: TLS is not part of Tycho yet.
local uv = require "luv"
local check = require "tycho.check"
local net = require "tycho.net"
local response_parser = require "tycho.http.response_parser"
local zlib = require "tycho.zlib"

local M = {}

M.USER_AGENT = "tycho/" .. require("tycho.core").versions().tycho
M.TIMEOUT = 30            -- seconds for a whole request, by default
M.CONNECT_TIMEOUT = 10    -- seconds to connect, by default
M.MAX_BODY = 64 * 1024 * 1024 -- buffered response bodies beyond this fail
M.MAX_REDIRECTS = 5       -- when follow_redirects is true
M.MAX_IDLE_PER_HOST = 16  -- pooled idle connections per host:port
M.IDLE_TIMEOUT = 30       -- seconds an idle pooled connection is kept
M.ACCEPT_ENCODING = "gzip, deflate" -- sent unless the caller sets one or decompress = false

local READ_SIZE = 64 * 1024

local function err3(code, fmt, ...)
  return nil, code .. ": " .. fmt:format(...), code
end

-- ---------------------------------------------------------------------
-- URLs

---Splits an http:// URL into {host=, port=, target=, authority=}, or
---returns nil, message, code.
---@param url string
function M.parse_url(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return err3("EINVAL", "invalid URL '%s' (expected http://host[:port]/path)", url) end
  scheme = scheme:lower()
  if scheme == "https" then
    return err3("ENOTSUP", "https:// is not supported: tycho.http speaks plain http:// only (%s)", url)
  elseif scheme ~= "http" then
    return err3("ENOTSUP", "unsupported URL scheme '%s' (only http:// is supported)", scheme)
  end
  local authority, target = rest:match("^([^/?#]*)(.*)$")
  authority = authority:gsub("^.*@", "") -- credentials in URLs are not sent
  target = target:gsub("#.*$", "")
  if target == "" then target = "/" end
  if target:sub(1, 1) == "?" then target = "/" .. target end
  local host, port = authority:match("^%[([%x:.]+)%]:?(%d*)$")
  if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
  if not host or host == "" then return err3("EINVAL", "invalid URL '%s' (no host)", url) end
  port = tonumber(port) or 80
  if port < 1 or port > 65535 then return err3("EINVAL", "invalid URL '%s' (bad port)", url) end
  return { host = host, port = port, target = target, authority = authority }
end

-- Resolves a Location header against the URL it came from.
local function resolve_location(base, location)
  if location:match("^%a[%w+.-]*://") then return location end
  local origin = "http://" .. base.authority
  if location:sub(1, 2) == "//" then return "http:" .. location end
  if location:sub(1, 1) == "/" then return origin .. location end
  local dir = base.target:gsub("[?#].*$", ""):match("^(.*/)") or "/"
  return origin .. dir .. location
end

-- ---------------------------------------------------------------------
-- The connection pool: idle keep-alive connections per host:port

local pool = {} -- key -> list of {conn=, parser=, since=}

M.stats = { connections = 0, reused = 0 } -- counters for tests and metrics

local function checkout(key)
  local list = pool[key]
  if not list then return nil end
  local now = uv.hrtime()
  while #list > 0 do
    local entry = table.remove(list)
    if (now - entry.since) / 1e9 < M.IDLE_TIMEOUT and not entry.conn:is_closed() then
      if #list == 0 then pool[key] = nil end
      M.stats.reused = M.stats.reused + 1
      entry.conn:ref()
      return entry
    end
    entry.conn:close()
  end
  pool[key] = nil
end

local function checkin(key, entry)
  local list = pool[key] or {}
  pool[key] = list
  if #list >= M.MAX_IDLE_PER_HOST then
    entry.conn:close()
    return
  end
  entry.since = uv.hrtime()
  entry.conn:unref() -- an idle pooled connection does not keep the process alive
  list[#list + 1] = entry
end

---Closes every idle pooled connection.
function M.close_idle()
  for key, list in pairs(pool) do
    for _, entry in ipairs(list) do entry.conn:close() end
    pool[key] = nil
  end
end

---How many idle connections the pool holds (for one `host:port`, or all).
---@param key? string
function M.idle_count(key)
  local n = 0
  for k, list in pairs(pool) do
    if key == nil or k == key then n = n + #list end
  end
  return n
end

-- ---------------------------------------------------------------------
-- Requests

local function check_token(n, fname, s, what)
  if s:find("[%c ]") or s == "" then
    error(("bad argument #%d to '%s' (invalid %s '%s')"):format(n, fname, what, s), 4)
  end
end

local function check_value(n, fname, name, v)
  if v:find("[\r\n%z]") then
    error(("bad argument #%d to '%s' (header '%s' contains CR, LF or NUL)"):format(n, fname, name), 4)
  end
end

-- Builds the request head; user headers override the defaults. A streamed
-- body (`framing` set) goes chunked unless the caller gave a Content-Length.
local function build_head(method, u, headers, body, framing, ask_gzip)
  local lines = { ("%s %s HTTP/1.1\r\n"):format(method, u.target) }
  local given = {}
  for name, value in pairs(headers) do
    given[name:lower()] = true
    local values = type(value) == "table" and value or { value }
    for _, v in ipairs(values) do
      lines[#lines + 1] = ("%s: %s\r\n"):format(name, v)
    end
  end
  local function default(name, value)
    if not given[name:lower()] then lines[#lines + 1] = ("%s: %s\r\n"):format(name, value) end
  end
  default("Host", u.authority)
  default("User-Agent", M.USER_AGENT)
  if ask_gzip then default("Accept-Encoding", M.ACCEPT_ENCODING) end
  if framing then
    if framing.chunked then default("Transfer-Encoding", "chunked") end
  elseif body or method == "POST" or method == "PUT" or method == "PATCH" then
    default("Content-Length", tostring(body and #body or 0))
  end
  lines[#lines + 1] = "\r\n"
  return table.concat(lines)
end

-- How a streamed body is framed: {length = n} when the caller's headers
-- say Content-Length (sent as-is, counted), else {chunked = true}.
local function body_framing(headers)
  for name, value in pairs(headers) do
    if name:lower() == "content-length" then
      local n = tonumber(type(value) == "table" and value[1] or value)
      if not n or n < 0 or n ~= math.floor(n) or (type(value) == "table" and #value ~= 1) then
        error(("bad argument #1 to 'request' (invalid Content-Length '%s')")
          :format(tostring(type(value) == "table" and table.concat(value, ", ") or value)), 4)
      end
      return { length = n }
    end
  end
  return { chunked = true }
end

-- Repeated headers are joined with ", " (RFC 9110), except Set-Cookie,
-- whose Expires dates hold commas: a list, one item per line (as Node's
-- headers["set-cookie"] and tycho.test.request give it).
local function headers_map(raw)
  local map = {}
  for i = 1, #raw, 2 do
    local name, value = raw[i]:lower(), raw[i + 1]
    if name == "set-cookie" then
      map[name] = map[name] or {}
      table.insert(map[name], value)
    else
      map[name] = map[name] and (map[name] .. ", " .. value) or value
    end
  end
  return map
end

local function seconds_left(deadline)
  return math.max(0, (deadline - uv.hrtime()) / 1e9)
end

-- Reads once from the connection (or takes bytes left over from the last
-- read) and feeds the parser. Returns nil, or an error triple. At EOF the
-- parser is finished (a read-until-close body ends there) and got_eof set.
local function step(entry, deadline)
  local conn, p = entry.conn, entry.parser
  local data, err, code
  if entry.extra then
    data, entry.extra = entry.extra, nil
  else
    conn:set_timeout(seconds_left(deadline))
    data, err, code = conn:read(READ_SIZE)
  end
  if err then
    if code == "ETIMEDOUT" then return err3("ETIMEDOUT", "request timed out") end
    return nil, err, code
  end
  if not data then
    entry.got_eof = true
    if not p:finish() then -- false, or nil and a parse error: cut short
      return err3("ECONNRESET", "connection closed before the response was complete")
    end
    return nil
  end
  entry.received = true
  local n, perr, pcode = p:execute(data)
  if not n then return nil, perr, pcode end
  if n < #data then entry.extra = data:sub(n + 1) end
end

-- Steps until the response head is parsed, skipping 1xx interim responses.
local function read_head(entry, deadline, head_only)
  local p = entry.parser
  while true do
    if p:headers_done() then
      local status = p:status()
      if status >= 200 or status == 101 then return nil end
      p:reset(head_only) -- "100 Continue" and friends: the real one follows
    end
    if entry.got_eof then
      return err3("ECONNRESET", "connection closed before the response")
    end
    local _, err, code = step(entry, deadline)
    if err then return nil, err, code end
  end
end

-- The connection may carry another request: pool it, else close it.
local function release(key, entry)
  local p = entry.parser
  if p:done() and p:keep_alive() and not entry.got_eof and not entry.extra
    and not entry.broken and not entry.conn:is_closed() then
    checkin(key, entry)
  else
    entry.conn:close()
  end
end

local function connect(u, deadline, opts)
  local ctimeout = math.min(opts.connect_timeout or M.CONNECT_TIMEOUT, seconds_left(deadline))
  local conn, err, code = net.connect(u.host, u.port, { timeout = ctimeout })
  if not conn then return nil, err, code end
  M.stats.connections = M.stats.connections + 1
  return { conn = conn, parser = response_parser.new() }
end

-- ---------------------------------------------------------------------
-- Streamed request bodies

-- Closes a connection when the request is left before it was handed on,
-- above all by an error raised through it (the task was cancelled while
-- it waited); clearing `conn` disarms it.
local Guard = { __close = function(g) if g.conn then g.conn:close() end end }

local function guard(conn) return setmetatable({ conn = conn }, Guard) end

-- Takes the next piece from a body source: a string, nil at the end, or
-- nil, message, code when it failed (raised, or returned nil, message). A
-- cancelled task's "cancelled" goes on up, so the request ends with it.
local function pull(next_piece)
  local ok, piece, err = pcall(next_piece)
  if not ok then
    if piece == "cancelled" then error(piece, 0) end
    return err3("EBODY", "request body failed: %s", tostring(piece))
  end
  if piece == nil then
    if err ~= nil then return err3("EBODY", "request body failed: %s", tostring(err)) end
    return nil
  end
  if type(piece) ~= "string" then
    return err3("EBODY", "request body gave a %s (string or nil expected)", type(piece))
  end
  return piece
end

-- Sends a streamed body after the head: each piece is written (awaiting
-- the socket while its queue is full, so nothing piles up), chunk-framed
-- or counted against the Content-Length. Returns true, or nil, message,
-- code and whether the failure was the socket's (the server may have
-- answered early).
local function send_body(conn, body, framing, deadline)
  local next_piece = body
  if type(body) ~= "function" then
    next_piece = function() return body:read(READ_SIZE) end
  end
  local sent, limit = 0, framing.length
  while true do
    local piece, err, code = pull(next_piece)
    if err then return nil, err, code end
    if not piece then break end
    sent = sent + #piece
    if limit and sent > limit then
      return err3("ECONTENTLENGTH", "request body longer than its Content-Length (%d bytes)", limit)
    end
    if seconds_left(deadline) <= 0 then return err3("ETIMEDOUT", "request timed out") end
    if #piece > 0 then -- an empty chunk would end a chunked body
      if framing.chunked then piece = ("%x\r\n"):format(#piece) .. piece .. "\r\n" end
      conn:set_timeout(seconds_left(deadline))
      local ok, werr, wcode = conn:write(piece)
      if not ok then return nil, werr, wcode, true end
    end
  end
  if limit and sent < limit then
    return err3("ECONTENTLENGTH", "request body ended after %d of %d bytes (Content-Length)", sent, limit)
  end
  if framing.chunked then
    local ok, werr, wcode = conn:write("0\r\n\r\n")
    if not ok then return nil, werr, wcode, true end
  end
  return true
end

local IDEMPOTENT = { GET = true, HEAD = true, OPTIONS = true, PUT = true, DELETE = true, TRACE = true }

-- Sends one request and reads its head. Returns the pool entry and key, or
-- nil and an error triple. A reused connection the server closed while
-- idle is retried once on a fresh one when the method is idempotent.
local function exchange(method, u, head, body, framing, deadline, opts)
  local key = u.host .. ":" .. u.port
  for attempt = 1, 2 do
    -- A streamed body cannot be replayed on a fresh connection if a pooled
    -- one turns out stale, so it always gets a fresh one.
    local entry = not framing and checkout(key) or nil
    local reused = entry ~= nil
    if not entry then
      local err, code
      entry, err, code = connect(u, deadline, opts)
      if not entry then return nil, err, code end
    end
    entry.received, entry.got_eof, entry.extra, entry.broken = false, false, nil, false
    if opts.max_header_bytes then -- this request's own limit, not the pooled one
      entry.parser = response_parser.new{ max_header_bytes = opts.max_header_bytes }
    end
    entry.parser:reset(method == "HEAD")
    local conn = entry.conn
    local closer <close> = guard(conn)
    conn:set_timeout(seconds_left(deadline))
    local _, ok, err, code, early
    ok, err, code = conn:write(type(body) == "string" and (head .. body) or head)
    if ok and framing then
      ok, err, code, early = send_body(conn, body, framing, deadline)
      if not ok and early and code ~= "ETIMEDOUT" then
        -- The server stopped reading: it may have answered already (413).
        local _, herr = read_head(entry, deadline, method == "HEAD")
        if not herr then
          entry.broken, closer.conn = true, nil
          return entry, key
        end
      end
      if not ok then return nil, err, code end
    end
    if ok then
      _, err, code = read_head(entry, deadline, method == "HEAD")
      ok = err == nil
    end
    if ok then
      closer.conn = nil
      return entry, key
    end
    conn:close()
    local stale = reused and not entry.received and code ~= "ETIMEDOUT"
    if not (stale and IDEMPOTENT[method] and attempt == 1) then return nil, err, code end
  end
end

-- ---------------------------------------------------------------------
-- Content-Encoding: answers decoded as they are read

local DECODERS = { gzip = "gunzip", ["x-gzip"] = "gunzip", deflate = "inflate" }

-- A zlib stream for the response's Content-Encoding (nil for identity or
-- one we do not know: those bodies stay as sent). The headers map then
-- describes the decoded body: Content-Encoding and Content-Length (the
-- wire's) leave it, raw_headers keeps them, and res.content_encoding says
-- what was decoded.
local function decoder(res, method, max_size)
  local coding = res.headers["content-encoding"]
  if not coding or method == "HEAD" or res.status == 204 or res.status == 304 then return nil end
  coding = coding:lower():match("^%s*(.-)%s*$")
  local kind = DECODERS[coding]
  if not kind then return nil end
  res.headers["content-encoding"], res.headers["content-length"] = nil, nil
  res.content_encoding = coding
  return { z = zlib.stream(kind, { max_size = max_size }), fed = false }
end

-- Compressed bytes a streamed response decodes at a time: deflate inflates
-- at most about 1032 times, so a piece read stays under ~4 MiB whatever
-- comes over the wire (a small bomb read with stream = true).
local SLICE = 4096

-- Runs a piece (or the end: nil) through the decoder: the output, or nil,
-- message, code. A body that brought no bytes at all is empty, not a
-- truncated stream (as curl, Go and browsers read it).
local function decode(dec, piece, max_size)
  local out, err, code
  if piece then
    dec.fed = true
    out, err, code = dec.z:update(piece)
  elseif not dec.fed then
    dec.z:close()
    return ""
  else
    out, err, code = dec.z:finish()
  end
  if out then return out end
  if code == "Z_TOO_LARGE" then
    return err3("ETOOLARGE", "response body larger than %d bytes (decompressed)", max_size)
  end
  return err3("EDECODE", "cannot decode the response body (%s)", err)
end

-- ---------------------------------------------------------------------
-- Responses

local Response = {}
Response.__index = Response

---Reads the next piece of a streamed body; nil at the end, or nil,
---message, code. Yields.
function Response:read()
  local st = self._st
  if not st then return nil end
  local entry, p, dec = st.entry, st.entry.parser, st.dec
  while true do
    local piece, err, code
    if dec then
      -- Compressed bytes go in a slice at a time; pending[pos..] waits.
      if st.pos > #st.pending then st.pending, st.pos = p:body(), 1 end
      local slice = st.pending:sub(st.pos, st.pos + SLICE - 1)
      st.pos = st.pos + SLICE
      if slice ~= "" then piece, err, code = decode(dec, slice, st.max) end
    else
      piece = p:body()
    end
    if piece and piece ~= "" then
      st.size = st.size + #piece
      if not (st.max and st.size > st.max) then return piece end
      _, err, code = err3("ETOOLARGE", "response body larger than %d bytes", st.max)
    end
    if not err and st.pos > #st.pending then
      if p:done() or entry.got_eof then
        local last = ""
        if dec then last, err, code = decode(dec, nil, st.max) end
        if last then
          self._st = nil
          release(st.key, entry)
          if last ~= "" then return last end
          return nil
        end
      else
        _, err, code = step(entry, st.deadline)
      end
    end
    if err then
      self._st = nil
      entry.conn:close()
      if dec then dec.z:close() end
      return nil, err, code
    end
  end
end

---Iterates over the body's pieces: `for chunk in res:chunks() do ... end`.
---Raises on a read error.
function Response:chunks()
  return function()
    local piece, err = self:read()
    if err then error(err, 2) end
    return piece
  end
end

---Reads the rest of a streamed body into one string. Yields.
function Response:read_all()
  local parts, n = {}, 0
  while true do
    local piece, err, code = self:read()
    if err then return nil, err, code end
    if not piece then break end
    n = n + #piece
    parts[#parts + 1] = piece
  end
  return table.concat(parts)
end

---Stops reading a streamed body; the connection is closed (not pooled)
---unless the body was read to its end.
function Response:close()
  local st = self._st
  if not st then return end
  self._st = nil
  st.entry.conn:close()
  if st.dec then st.dec.z:close() end
end

Response.__close = Response.close
Response.__gc = Response.close

-- ---------------------------------------------------------------------
-- The request loop with redirects

local REDIRECT = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }

local function collect_body(entry, deadline, max_body, dec)
  local p, parts, size = entry.parser, {}, 0
  while true do
    local piece = p:body()
    if dec and piece ~= "" then
      local err, code
      piece, err, code = decode(dec, piece, max_body)
      if not piece then
        entry.conn:close()
        return nil, err, code
      end
    end
    if piece ~= "" then
      size = size + #piece
      if size > max_body then
        entry.conn:close()
        return err3("ETOOLARGE", "response body larger than %d bytes", max_body)
      end
      parts[#parts + 1] = piece
    end
    if p:done() or entry.got_eof then break end
    local _, err, code = step(entry, deadline)
    if err then
      entry.conn:close()
      return nil, err, code
    end
  end
  if dec then
    local last, err, code = decode(dec, nil, max_body)
    if not last then
      entry.conn:close()
      return nil, err, code
    end
    parts[#parts + 1] = last
  end
  return table.concat(parts)
end

-- Whether v has a read method (a stream, a file, ...).
local function readable(v)
  local t = type(v)
  if t ~= "table" and t ~= "userdata" then return false end
  local ok, read = pcall(function() return v.read end)
  return ok and type(read) == "function"
end

local function check_opts(opts)
  check.arg(1, "request", opts, "table")
  check.arg(1, "request", opts.url, "string")
  check.opt(1, "request", opts.method, "string")
  check.opt(1, "request", opts.headers, "table")
  local body = opts.body
  if body ~= nil and type(body) ~= "string" and type(body) ~= "function"
    and not readable(body) then
    error(("bad argument #1 to 'request' (body must be a string, a function or an object"
      .. " with a read method, got %s)"):format(type(body)), 3)
  end
  check.opt(1, "request", opts.timeout, "number")
  check.opt(1, "request", opts.connect_timeout, "number")
  check.opt(1, "request", opts.follow_redirects, "boolean|number")
  check.opt(1, "request", opts.decompress, "boolean")
  local method = (opts.method or "GET"):upper()
  check_token(1, "request", method, "method")
  for name, value in pairs(opts.headers or {}) do
    check.arg(1, "request", name, "string", 3)
    check_token(1, "request", name, "header name")
    check.arg(1, "request", value, "string|number|table", 3)
    if type(value) == "table" then
      for _, v in ipairs(value) do check_value(1, "request", name, tostring(v)) end
    else
      check_value(1, "request", name, tostring(value))
    end
  end
  local streamed = body ~= nil and type(body) ~= "string"
  return method, streamed and body_framing(opts.headers or {}) or nil
end

-- Whether headers has name (lower-case), in any case.
local function has_header(headers, name)
  for k in pairs(headers) do
    if k:lower() == name then return true end
  end
  return false
end

-- A copy of headers without those the predicate names (lower-case).
local function without(headers, drop)
  local kept = {}
  for k, v in pairs(headers) do
    if not drop[k:lower()] then kept[k] = v end
  end
  return kept
end

local CREDENTIALS = { authorization = true, cookie = true }
local FRAMING = { ["content-length"] = true, ["transfer-encoding"] = true }

-- Whether following this redirect sends the body again: 307/308 always,
-- 301/302 unless after a POST; 303 never.
local function resends_body(status, method)
  if status == 303 then return false end
  return status == 307 or status == 308 or method ~= "POST"
end

---Sends an HTTP request and awaits the response. Options: `url` (http://
---only), `method` ("GET"), `headers` (name -> string or list), `body`
---(a string; or streamed: a function returning the next piece, nil at the
---end, or an object with :read()), `timeout` (seconds for everything,
---default 30), `connect_timeout` (default 10), `follow_redirects` (true
---for up to 5, or a number), `stream` (return before the body; read it with
---res:read()), `max_body` (bytes, of the decoded body), `decompress`
---(default: ask for gzip and decode gzip/deflate answers unless the caller
---set its own Accept-Encoding or a Range; true: decode always; false:
---neither).
---Returns `{status=, reason=, headers=, raw_headers=, body=, url=}`, or nil, message, code. Yields.
---@param opts table
function M.request(opts)
  local method, framing = check_opts(opts)
  local deadline = uv.hrtime() + (opts.timeout or M.TIMEOUT) * 1e9
  local max_redirects = opts.follow_redirects == true and M.MAX_REDIRECTS
    or tonumber(opts.follow_redirects) or 0
  local url, body, headers = opts.url, opts.body, opts.headers or {}
  -- As Go's client does: our own Accept-Encoding, our own decoding; a
  -- caller who asks for an encoding gets the bytes as sent (a proxy). A
  -- Range request asks for none: a range of gzip bytes does not decode.
  local ask = opts.decompress ~= false and not has_header(headers, "accept-encoding")
    and not has_header(headers, "range")
  local decode_body = opts.decompress == true or (opts.decompress == nil and ask)
  for hop = 0, max_redirects do
    local u, uerr, ucode = M.parse_url(url)
    if not u then return nil, uerr, ucode end
    local head = build_head(method, u, headers, body, framing, ask)
    local entry, key_or_err, code = exchange(method, u, head, body, framing, deadline, opts)
    if not entry then return nil, key_or_err, code end
    local closer <close> = guard(entry.conn) -- until released or handed on
    local key, p = key_or_err, entry.parser
    local status, reason = p:status()
    local raw = p:headers()
    local res = { status = status, reason = reason, raw_headers = raw,
                  headers = headers_map(raw), url = url, version = p:version() }
    local location = res.headers.location
    -- A streamed body is gone once sent: a redirect that would send it
    -- again is the answer itself.
    local follow = REDIRECT[status] and location and max_redirects > 0
      and not (framing and resends_body(status, method))
    if follow and hop < max_redirects then
      local _, berr, bcode = collect_body(entry, deadline, M.MAX_BODY)
      if berr then return nil, berr, bcode end
      release(key, entry)
      closer.conn = nil
      local next_url = resolve_location(u, location)
      if not resends_body(status, method) then
        method, body, framing = method == "HEAD" and "HEAD" or "GET", nil, nil
        headers = without(headers, FRAMING)
      end
      local nu = M.parse_url(next_url)
      if nu and nu.authority ~= u.authority then headers = without(headers, CREDENTIALS) end
      url = next_url
    elseif follow then
      return err3("ETOOMANYREDIRECTS", "too many redirects (more than %d) at %s", max_redirects, url)
    elseif opts.stream then
      local dec = decode_body and decoder(res, method, opts.max_body)
      res._st = { entry = entry, key = key, deadline = deadline, max = opts.max_body,
                  dec = dec or nil, pending = "", pos = 1, size = 0 }
      closer.conn = nil
      return setmetatable(res, Response)
    else
      local max_body = opts.max_body or M.MAX_BODY
      local dec = decode_body and decoder(res, method, max_body)
      local data, berr, bcode = collect_body(entry, deadline, max_body, dec or nil)
      if not data then return nil, berr, bcode end
      release(key, entry)
      closer.conn = nil
      res.body = data
      return res
    end
  end
end

---GET `url`; `opts` as for request. Yields.
---@param url string
---@param opts? table
function M.get(url, opts)
  check.arg(1, "get", url, "string")
  check.opt(2, "get", opts, "table")
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.url, o.method = url, "GET"
  return M.request(o)
end

return M
