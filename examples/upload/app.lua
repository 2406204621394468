-- File upload with a streaming body: the request body is written to disk
-- piece by piece as it arrives (req:chunks()), never held whole in memory.
--
--   UPLOAD_DIR=/tmp/uploads tycho run examples/upload/app.lua
--   curl -s -T photo.jpg localhost:8080/upload/photo.jpg
--   curl -s localhost:8080/files
--   curl -s -F note=hi -F file=@photo.jpg -F file=@cat.png localhost:8080/upload
--
-- GET / serves an HTML form that posts to /upload as multipart/form-data,
-- the way a browser uploads files: req:parts() streams each file part to
-- disk as it arrives, with the same back-pressure as req:chunks().
--
-- UPLOAD_DIR defaults to ./uploads. Bodies over the server's
-- max_body_bytes (1 MiB unless `tycho run --max-body BYTES` or
-- tycho.http.serve{max_body_bytes=} says more) are refused with 413
-- before any is read.
local tycho = require "tycho"
local fs = tycho.fs

local dir = tycho.process.env.UPLOAD_DIR or "uploads"
assert(fs.mkdir(dir, { recursive = true }))

local app = tycho.http.router()

-- Plain names only: no slashes, no leading dot, so no way out of dir.
local function valid_name(name)
  return #name <= 100 and name:match("^[%w_%-][%w_%.%-]*$") ~= nil
end

local function upload(req, res)
  local name = req.params.name
  if not valid_name(name) then
    return res:json({ error = "file name must be letters, digits, '.', '_' or '-'" }, 400)
  end
  local tmp = ("%s/.%s.part"):format(dir, name)
  local f, err = fs.open(tmp, "w")
  if not f then return res:json({ error = err }, 500) end
  local bytes, done = 0, false
  -- If the client disconnects mid-body, chunks() raises "cancelled": the
  -- <close> variables still run, closing the file and removing the partial
  -- upload (with a synchronous unlink: a cancelled task cannot wait).
  local _ <close> = setmetatable({}, { __close = function()
    if not done then tycho.uv.fs_unlink(tmp) end
  end })
  do
    local file <close> = f
    for chunk in req:chunks() do
      assert(file:write(chunk))
      bytes = bytes + #chunk
    end
    assert(file:close()) -- waits for the close; the <close> is then a no-op
  end
  assert(fs.rename(tmp, dir .. "/" .. name))
  done = true
  res:json({ name = name, bytes = bytes }, 201)
end
app:put("/upload/:name", upload)
app:post("/upload/:name", upload)

-- A browser form: multipart/form-data, files streamed part by part. Each
-- file goes to a hidden temporary name first; all are renamed only once
-- the whole body has parsed, so a malformed or cut-off upload leaves none.
local FORM = [[<!doctype html>
<title>Upload</title>
<form method="post" action="/upload" enctype="multipart/form-data">
  <input name="note" placeholder="note">
  <input type="file" name="file" multiple>
  <button>Upload</button>
</form>
]]

app:get("/", function(_, res)
  res:header("Content-Type", "text/html; charset=utf-8")
  res:send(FORM)
end)

-- The file name a browser sent, without any directory part.
local function base_name(filename)
  return filename:match("([^/\\]*)$")
end

local function remove_all(written)
  for _, w in ipairs(written) do tycho.uv.fs_unlink(w.tmp) end
end

-- Writes one file part to a temporary file: its size, or nil, message.
local function save_part(part, tmp)
  local f, err = fs.open(tmp, "w")
  if not f then return nil, err end
  local file <close> = f
  local bytes = 0
  for chunk in part:chunks() do
    assert(file:write(chunk))
    bytes = bytes + #chunk
  end
  assert(file:close())
  if part.error then return nil, part.error end
  return bytes
end

app:post("/upload", function(req, res)
  local parts, err = req:parts()
  if not parts then return res:json({ error = err }, 415) end
  local fields, written, done = {}, {}, false
  -- An error or a cancel (client gone) removes the files of this body.
  local _ <close> = setmetatable({}, { __close = function()
    if not done then remove_all(written) end
  end })
  -- A refusal removes them before answering, so the client never sees them.
  local function refuse(status, message)
    remove_all(written)
    written = {}
    return res:json({ error = message }, status)
  end
  for part in parts do
    if part.filename and part.filename ~= "" then -- "": no file chosen
      local name = base_name(part.filename)
      if not valid_name(name) then
        return refuse(400, "bad file name: " .. name)
      end
      local tmp = ("%s/.%s.%d.part"):format(dir, name, #written + 1)
      written[#written + 1] = { name = name, tmp = tmp }
      local bytes, serr = save_part(part, tmp)
      if not bytes then return refuse(400, serr) end
      written[#written].bytes = bytes
    elseif not part.filename then
      local value, ferr = part:read_all(64 * 1024)
      if not value then return refuse(400, ferr) end
      fields[part.name] = value
    end
  end
  if parts.error then return refuse(400, parts.error) end
  local files = {}
  for i, w in ipairs(written) do
    assert(fs.rename(w.tmp, dir .. "/" .. w.name))
    files[i] = { name = w.name, bytes = w.bytes }
  end
  done = true
  res:json({ fields = fields, files = #files > 0 and files or tycho.json.empty_array }, 201)
end)

app:get("/files", function(req, res)
  local list = {}
  for _, name in ipairs(assert(fs.readdir(dir))) do
    if name:sub(1, 1) ~= "." then
      local st = assert(fs.stat(dir .. "/" .. name))
      list[#list + 1] = { name = name, bytes = st.size }
    end
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  res:json(#list > 0 and list or tycho.json.empty_array) -- [] rather than {}
end)

return app
