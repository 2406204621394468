-- A JSON REST API with a router, route parameters and input validation.
--
--   tycho run examples/rest-api/app.lua
--   curl -s localhost:8080/todos
--   curl -s -X POST localhost:8080/todos -H 'content-type: application/json' \
--        -d '{"title":"write docs"}'
--   curl -s localhost:8080/todos/1
--   curl -s -X PATCH localhost:8080/todos/1 -d '{"done":true}'
--   curl -s -X DELETE localhost:8080/todos/1
--
-- Bad input gets a 400 whose JSON body says what is wrong, e.g.
-- {"error":"title must be a non-empty string of at most 200 characters"}.
-- The todos live in memory, in tycho.state, so a hot reload
-- (`--watch`) keeps them. A front-end served from another origin
-- (http://localhost:3000, a dev server) may call it: the CORS middleware
-- answers the browser's preflight and lets its scripts read Location.
local tycho = require "tycho"

local app = tycho.http.router()
local store = tycho.state("todos", function() return { next_id = 1, items = {} } end)

local MAX_TITLE = 200

app:use(tycho.http.cors {
  origins = { "http://localhost:3000" },
  methods = { "GET", "POST", "PATCH", "DELETE" },
  headers = { "Content-Type" },
  expose = { "Location" },
  max_age = 600,
})

local function fail(res, status, message)
  res:json({ error = message }, status)
end

-- The body as a JSON object, or nil after answering 400.
local function json_object(req, res)
  local body, err = req:json()
  if body == nil then
    fail(res, 400, "invalid JSON body: " .. tostring(err))
  elseif type(body) ~= "table" or #body > 0 then -- a scalar or a JSON array
    fail(res, 400, "the body must be a JSON object")
  else
    return body
  end
end

-- Checks the fields a client may send; returns an error message or nil.
-- `partial` (PATCH) allows a missing title.
local function invalid(body, partial)
  local title = body.title
  if title ~= nil or not partial then
    if type(title) ~= "string" or title == "" or #title > MAX_TITLE then
      return ("title must be a non-empty string of at most %d characters"):format(MAX_TITLE)
    end
  end
  if body.done ~= nil and type(body.done) ~= "boolean" then
    return "done must be true or false"
  end
  for k in pairs(body) do
    if k ~= "title" and k ~= "done" then return ("unknown field '%s'"):format(k) end
  end
end

-- The todo named by /todos/:id, or nil after answering 400 or 404.
local function find(req, res)
  local id = math.tointeger(tonumber(req.params.id))
  if not id or not req.params.id:match("^%d+$") then
    return fail(res, 400, "id must be a positive integer")
  end
  local item = store.items[id]
  if not item then return fail(res, 404, ("no todo with id %d"):format(id)) end
  return item
end

app:get("/todos", function(req, res)
  local list = {}
  for _, item in pairs(store.items) do list[#list + 1] = item end
  table.sort(list, function(a, b) return a.id < b.id end)
  res:json(#list > 0 and list or tycho.json.empty_array) -- [] rather than {}
end)

app:post("/todos", function(req, res)
  local body = json_object(req, res)
  if not body then return end
  local err = invalid(body, false)
  if err then return fail(res, 400, err) end
  local item = { id = store.next_id, title = body.title, done = body.done or false }
  store.next_id = store.next_id + 1
  store.items[item.id] = item
  res:header("Location", "/todos/" .. item.id)
  res:json(item, 201)
end)

app:get("/todos/:id", function(req, res)
  return find(req, res)
end)

app:patch("/todos/:id", function(req, res)
  local item = find(req, res)
  if not item then return end
  local body = json_object(req, res)
  if not body then return end
  local err = invalid(body, true)
  if err then return fail(res, 400, err) end
  if body.title ~= nil then item.title = body.title end
  if body.done ~= nil then item.done = body.done end
  return item
end)

app:delete("/todos/:id", function(req, res)
  local item = find(req, res)
  if not item then return end
  store.items[item.id] = nil
  res:status(204):send()
end)

return app
