--- tycho.http.static: serves the files under one directory. Content-Type by
--- extension, ETag and Last-Modified with 304s, single byte ranges (206/416),
--- index.html for directories, bodies sent with sendfile(2) (never through
--- Lua strings). Never serves outside the directory: `..` segments (also
--- percent-encoded), NUL bytes and symlinks leading out are all refused.
local uv = require "luv"
local core = require "tycho.core"
local check = require "tycho.check"

local M = {}

local TYPES = {
  html = "text/html; charset=utf-8", htm = "text/html; charset=utf-8",
  css = "text/css; charset=utf-8", js = "text/javascript; charset=utf-8",
  mjs = "text/javascript; charset=utf-8", json = "application/json",
  txt = "text/plain; charset=utf-8", md = "text/markdown; charset=utf-8",
  xml = "application/xml", svg = "image/svg+xml", png = "image/png",
  jpg = "image/jpeg", jpeg = "image/jpeg", gif = "image/gif", webp = "image/webp",
  ico = "image/x-icon", avif = "image/avif", woff = "font/woff", woff2 = "font/woff2",
  ttf = "font/ttf", otf = "font/otf", pdf = "application/pdf", wasm = "application/wasm",
  zip = "application/zip", gz = "application/gzip", mp4 = "video/mp4",
  webm = "video/webm", mp3 = "audio/mpeg", ogg = "audio/ogg", wav = "audio/wav",
  csv = "text/csv; charset=utf-8", lua = "text/plain; charset=utf-8",
}
M.types = TYPES

local function await(f, ...)
  local co, tok = core.token()
  local args = table.pack(...)
  args.n = args.n + 1
  args[args.n] = function(err, v)
    if not core.wake(co, tok, err, v) and not err and f == uv.fs_open then uv.fs_close(v) end
  end
  local req, err = f(table.unpack(args, 1, args.n))
  if not req then return err end
  return core.park()
end

local function content_type(path)
  local ext = path:match("%.([%w]+)$")
  return ext and TYPES[ext:lower()] or "application/octet-stream"
end

-- Turns a request path into a path relative to the root, or nil when it
-- tries to leave the root. Works on the decoded path, so %2e%2e is "..".
local function relative(path)
  if path:find("\0", 1, true) or path:find("\\", 1, true) then return nil end
  local parts = {}
  for seg in path:gmatch("[^/]+") do
    if seg == ".." then return nil end
    if seg ~= "." then parts[#parts + 1] = seg end
  end
  return table.concat(parts, "/")
end

local function http_date(sec)
  return os.date("!%a, %d %b %Y %H:%M:%S GMT", sec)
end

-- Parses a single "bytes=a-b" range against size: first, last; or false
-- when unsatisfiable; or nil to ignore the header (multi-range, junk).
local function parse_range(h, size)
  local a, b = h:match("^bytes=(%d*)-(%d*)$")
  if not a or (a == "" and b == "") then return nil end
  local first, last
  if a == "" then
    local n = tonumber(b)
    if n == 0 then return false end
    first, last = math.max(0, size - n), size - 1
  else
    first = tonumber(a)
    last = b == "" and size - 1 or math.min(tonumber(b), size - 1)
  end
  if first >= size or first > last then return false end
  return first, last
end

local function not_modified(req, etag, last_modified)
  local inm = req:header("if-none-match")
  if inm then
    for tag in inm:gmatch("[^,%s]+") do
      if tag == etag or tag == "*" then return true end
    end
    return false
  end
  return req:header("if-modified-since") == last_modified
end

local function send_file(req, res, file, st, opts)
  local size = st.size
  local etag = ('W/"%x-%x-%x"'):format(size, st.mtime.sec, st.mtime.nsec)
  local last_modified = http_date(st.mtime.sec)
  res:header("ETag", etag)
  res:header("Last-Modified", last_modified)
  res:header("Accept-Ranges", "bytes")
  if opts.max_age then res:header("Cache-Control", "public, max-age=" .. opts.max_age) end
  if not_modified(req, etag, last_modified) then
    res:status(304)
    return res:send()
  end
  res:header("Content-Type", content_type(file))
  local first, last = 0, size - 1
  local range = req:header("range")
  if range and req.method ~= "HEAD" or range then
    local f, l = parse_range(range or "", size)
    if f == false then
      res:status(416):header("Content-Range", "bytes */" .. size)
      return res:send()
    elseif f then
      first, last = f, l
      res:status(206):header("Content-Range", ("bytes %d-%d/%d"):format(first, last, size))
    end
  end
  local err, fd = await(uv.fs_open, file, "r", 0)
  if err then
    res:status(404)
    return res:send("Not Found\n")
  end
  return res:send_file(fd, first, size == 0 and 0 or last - first + 1)
end

---A handler that serves files under `dir`. In a router, mount it on a
---wildcard route (`app:get("/assets/*", tycho.http.static("public"))`): the
---wildcard part is the file path; otherwise the whole request path is.
---Options: index ("index.html"; false for none), max_age (Cache-Control
---seconds), fallthrough (call next() instead of answering 404, as middleware).
---@param dir string
---@param opts? {index?: string|false, max_age?: integer, fallthrough?: boolean}
---@return function handler(req, res, next)
function M.new(dir, opts)
  check.arg(1, "static", dir, "string")
  check.opt(2, "static", opts, "table")
  opts = opts or {}
  local index = opts.index == nil and "index.html" or opts.index
  local root -- resolved on first use: a task may await, new() may not

  local function missing(res, nxt)
    if opts.fallthrough and nxt then return nxt() end
    res:status(404)
    return res:send("Not Found\n")
  end

  return function(req, res, nxt)
    if req.method ~= "GET" and req.method ~= "HEAD" then
      if opts.fallthrough and nxt then return nxt() end
      res:status(405):header("Allow", "GET, HEAD")
      return res:send("Method Not Allowed\n")
    end
    if not root then
      local err, real = await(uv.fs_realpath, dir)
      if err then return missing(res, nxt) end
      root = real
    end
    local wanted = req.params and req.params["*"] or req.path
    local rel = relative(wanted)
    if not rel then
      res:status(403)
      return res:send("Forbidden\n")
    end
    local err, real = await(uv.fs_realpath, rel == "" and root or (root .. "/" .. rel))
    if err then return missing(res, nxt) end
    if real ~= root and real:sub(1, #root + 1) ~= root .. "/" then
      return missing(res, nxt) -- a symlink leading out: as if absent
    end
    local serr, st = await(uv.fs_stat, real)
    if serr then return missing(res, nxt) end
    if st.type == "directory" then
      if not index then return missing(res, nxt) end
      if req.path:sub(-1) ~= "/" then
        return res:redirect(req.path .. "/", 301)
      end
      real = real .. "/" .. index
      serr, st = await(uv.fs_stat, real)
      if serr or st.type ~= "file" then return missing(res, nxt) end
    elseif st.type ~= "file" then
      return missing(res, nxt)
    end
    return send_file(req, res, real, st, opts)
  end
end

return M
