-- A static site: the files under public/ with Content-Type, ETag and 304s,
-- byte ranges and index.html, next to one small JSON route.
--
--   tycho run examples/static-site/app.lua
--   curl -i localhost:8080/            (public/index.html)
--   curl -i localhost:8080/style.css
--   curl -s localhost:8080/api/time
--
-- Paths with `..` get 403 and nothing outside public/ is ever served.
local tycho = require "tycho"

-- public/ next to this file, wherever tycho is started from.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

local app = tycho.http.router()

app:get("/api/time", function()
  return { now = os.date("!%Y-%m-%dT%H:%M:%SZ") }
end)

-- Everything else is a file; max_age sets Cache-Control.
local files = tycho.http.static(here .. "/public", { max_age = 60 })
app:get("/", files)
app:get("/*", files)

return app
