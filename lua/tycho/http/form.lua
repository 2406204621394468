--- tycho.http.form: HTML form bodies. Adds req:form([opts]) (urlencoded or
--- multipart, buffered) and req:parts([opts]) (multipart, streamed) to the
--- request. Urlencoded bodies go through the C query decoder req.query
--- uses (src/http/message.c), multipart ones through the incremental C
--- parser in src/http/multipart.c, pulled only as fast as the handler
--- reads: a part's bytes come from req:chunks() when the parser needs
--- them, so a large upload streams to disk without being held in memory.
local core = require "tycho.http.core"
local multipart = require "tycho.http.multipart"
local check = require "tycho.check"

local M = {}

local req_methods = core.request_methods
local query_parse = core.query_parse
local concat = table.concat

local URLENCODED = "application/x-www-form-urlencoded"
local MULTIPART = "multipart/form-data"

-- The limits req:parts() hands to the parser, and req:form()'s own.
local LIMITS = { "max_parts", "max_headers", "max_header_bytes" }

local function check_opts(fname, opts, extra)
  check.opt(1, fname, opts, "table", 3)
  if not opts then return {} end
  local function positive(key)
    local v = opts[key]
    if v ~= nil and (math.type(v) ~= "integer" or v < 1) then
      error(("bad argument #1 to '%s' (field '%s' must be a positive integer, got %s)")
        :format(fname, key, tostring(v)), 4)
    end
  end
  for _, key in ipairs(LIMITS) do positive(key) end
  if extra then positive(extra) end
  return opts
end

-- The media type of the request, lower case, and the whole header.
local function media_type(req)
  local ct = req:header("content-type")
  if not ct then return nil end
  local mt = ct:match("^[ \t]*([^;, \t]+)")
  return mt and mt:lower(), ct
end

-- t[name] = value, a repeated name becoming a list (as req.query does).
local function add(t, name, value)
  local old = t[name]
  if old == nil then
    t[name] = value
  elseif type(old) == "table" and old[1] ~= nil then
    old[#old + 1] = value
  else
    t[name] = { old, value }
  end
end

-- ---------------------------------------------------------------------
-- Streaming: the parts iterator and its parts

-- Next parser event, feeding it from the request body when it asks.
local function pull(s)
  while true do
    local ev, v = s.parser:next()
    if ev ~= "more" then return ev, v end
    local chunk = s.src()
    if chunk then s.parser:feed(chunk) else s.parser:finish() end
  end
end

local Part = {}
Part.__index = Part

-- One piece of the part's content, or nil at its end (or when the body
-- turned out malformed: then part.error and the iterator's error are set).
local function part_next(part)
  local s = part._s
  if part._ended then return nil end
  local ev, v = pull(s)
  if ev == "data" then return v end
  part._ended = true
  s.cur = nil
  if ev ~= "end" then
    local err = ev == nil and v or "multipart body ends inside a part"
    part.error, s.it.error = err, err
  end
  return nil
end

---Iterator over the part's content as it arrives (awaits the body).
function Part:chunks()
  return part_next, self
end

---The part's whole content (awaits it), or nil, message when the body is
---malformed or longer than max_bytes.
---@param max_bytes? integer
function Part:read_all(max_bytes)
  check.opt(1, "read_all", max_bytes, "number")
  local buf, n, total = {}, 0, 0
  for chunk in part_next, self do
    total = total + #chunk
    if max_bytes and total > max_bytes then
      return nil, ("part %q is larger than %d bytes"):format(self.name, max_bytes)
    end
    n = n + 1
    buf[n] = chunk
  end
  if self.error then return nil, self.error end
  return concat(buf, "", 1, n)
end

local Parts = {}
Parts.__index = Parts

-- The iterator's call: skips what is left of the current part, then
-- returns the next part, or nil at the end or on a malformed body.
Parts.__call = function(it)
  local s = it._s
  if s.over then return nil end
  if s.cur then
    while part_next(s.cur) do end
  end
  if it.error then
    s.over = true
    return nil
  end
  local ev, info = pull(s)
  if ev ~= "part" then
    s.over = true
    if ev ~= "done" then it.error = ev == nil and info or "unexpected multipart event" end
    return nil
  end
  info._s = s
  s.cur = setmetatable(info, Part)
  return s.cur
end

local function open_parts(req, opts)
  local mt, ct = media_type(req)
  if mt ~= MULTIPART then
    return nil, ("request body is not %s (Content-Type: %s)"):format(MULTIPART, ct or "none")
  end
  local boundary, err = multipart.boundary(ct)
  if not boundary then return nil, err end
  -- Two parsers over one body would each get half of its pieces.
  if req._multipart then error("the body is already being read as multipart", 3) end
  req._multipart = true
  local limits = {}
  for _, key in ipairs(LIMITS) do limits[key] = opts[key] end
  local s = { parser = multipart.parser(boundary, limits), src = req:chunks() }
  local it = setmetatable({ _s = s }, Parts)
  s.it = it
  return it
end

---Streams a multipart/form-data body: an iterator over its parts (each
---with name, filename, content_type, headers, :chunks(), :read_all()),
---or nil, message when the request is not multipart. After the loop,
---`parts.error` holds the message of a malformed body.
function req_methods.parts(req, opts)
  opts = check_opts("parts", opts)
  return open_parts(req, opts)
end

-- ---------------------------------------------------------------------
-- Buffered: req:form()

local function too_large(max)
  return nil, ("form body is larger than max_bytes (%d)"):format(max)
end

-- The whole body, refused as soon as it is known to be over max: from its
-- Content-Length, else once the pieces read add up to more.
local function read_bounded(req, max)
  if not max then return req:body() end
  local declared = tonumber(req:header("content-length") or "")
  if declared and declared > max then return too_large(max) end
  local buf, n, total = {}, 0, 0
  for chunk in req:chunks() do
    total = total + #chunk
    if total > max then return too_large(max) end
    n = n + 1
    buf[n] = chunk
  end
  return concat(buf, "", 1, n)
end

local function read_multipart(req, opts)
  local parts, err = open_parts(req, opts)
  if not parts then return nil, err end
  local max, total = opts.max_bytes, 0
  local fields, files = {}, {}
  for part in parts do
    local buf, n = {}, 0
    for chunk in part:chunks() do
      total = total + #chunk
      if max and total > max then return too_large(max) end
      n = n + 1
      buf[n] = chunk
    end
    if part.error then break end
    local data = concat(buf, "", 1, n)
    if part.filename then
      add(files, part.name, {
        filename = part.filename, content_type = part.content_type,
        headers = part.headers, data = data,
      })
    else
      add(fields, part.name, data)
    end
  end
  if parts.error then return nil, "malformed multipart body: " .. parts.error end
  return fields, files
end

---The request's form (awaits the body): fields, files for
---multipart/form-data, fields, {} for urlencoded; nil, message for another
---content type, a malformed body or one larger than opts.max_bytes.
function req_methods.form(req, opts)
  opts = check_opts("form", opts, "max_bytes")
  local mt, ct = media_type(req)
  if mt == MULTIPART then return read_multipart(req, opts) end
  if mt ~= URLENCODED then
    return nil, ("request body is not a form (Content-Type: %s)"):format(ct or "none")
  end
  local body, err = read_bounded(req, opts.max_bytes)
  if not body then return nil, err end
  return query_parse(body), {}
end

return M
