-- soak.lua: wrk script for bench/soak.py. Cycles through a mix of requests
-- (small, error, large response, 256 KiB upload, JSON, streamed).
local upload = ("u"):rep(256 * 1024)
local reqs, n
function init(args)
  n = 0
  reqs = {
    wrk.format("GET", "/"),
    wrk.format("GET", "/error"),
    wrk.format("GET", "/json?x=1&y=%20z"),
    wrk.format("GET", "/"),
    wrk.format("GET", "/stream"),
    wrk.format("GET", "/missing"),
    wrk.format("GET", "/"),
    wrk.format("GET", "/json?a=1&a=2"),
  }
end
function request()
  n = n + 1
  if n % 200 == 0 then return wrk.format("POST", "/upload", nil, upload) end
  if n % 200 == 100 then return wrk.format("GET", "/big") end
  return reqs[n % #reqs + 1]
end
