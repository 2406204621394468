-- File upload with a streaming body: the request body is written to disk
-- piece by piece as it arrives (req:chunks()), never held whole in memory.
--
--   UPLOAD_DIR=/tmp/uploads tycho run examples/upload/app.lua
--   curl -s -T photo.jpg localhost:8080/upload/photo.jpg
--   curl -s localhost:8080/files
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
