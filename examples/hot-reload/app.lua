-- Hot reload: edit this file or greeting.lua while the server runs and the
-- next request runs the new code; the visit counter (tycho.state) and open
-- connections survive. A save with a syntax error changes nothing: the
-- error is printed and the old code keeps serving.
--
--   tycho run examples/hot-reload/app.lua --watch
--   curl -s localhost:8080/          {"message":"Hello","visits":1,"generation":1}
--   (change the text in greeting.lua and save)
--   curl -s localhost:8080/          {"message":"...","visits":2,"generation":2}
--
-- Without --watch, `kill -HUP <pid>` reloads.
local tycho = require "tycho"
local greeting = require "greeting" -- greeting.lua next to this file

-- Kept across reloads: init runs only the first time.
local visits = tycho.state("visits", function() return { n = 0 } end)

local app = tycho.http.router()

app:get("/", function(req)
  visits.n = visits.n + 1
  return { message = greeting.text(), visits = visits.n, generation = req.generation }
end)

return app
