--- tycho.repl.wire: the protocol between `tycho attach` and the REPL
--- server, one JSON object per line over a Unix socket.
---   client -> server: {t="line", s=TEXT}   a line the user typed
---                     {t="int"}            Ctrl-C
---                     {t="complete", id=N, s=WORD}
---                                          Tab: names completing WORD
---   server -> client: {t="hello", pid=N, version=V}
---                     {t="out", s=TEXT}    results and print() output
---                     {t="err", s=TEXT}    error messages
---                     {t="prompt", s=P}    ready for the next line
---                     {t="completion", id=N, list={WORD...}}
---                                          the answer to "complete" N,
---                                          sent at once, even while a
---                                          line runs
local json = require "tycho.json"
local check = require "tycho.check"
local uv = require "luv"

local M = {}

M.MAX_LINE = 1024 * 1024 -- a longer message ends the connection

---Encodes one message as a line.
---@param msg table
---@return string
function M.encode(msg)
  return json.encode(msg) .. "\n"
end

---Returns feed(data) -> messages, err: splits the byte stream into
---decoded messages; err is set when the peer sent garbage or a line
---longer than MAX_LINE.
---@return fun(data: string): table[], string?
function M.splitter()
  local buf = ""
  return function(data)
    buf = buf .. data
    local out = {}
    while true do
      local i = buf:find("\n", 1, true)
      if not i then break end
      local msg = json.decode(buf:sub(1, i - 1))
      buf = buf:sub(i + 1)
      if type(msg) ~= "table" or type(msg.t) ~= "string" then
        return out, "bad message"
      end
      out[#out + 1] = msg
    end
    if #buf > M.MAX_LINE then return out, "message too long" end
    return out
  end
end

-- Sends data whole or not at all (as far as the caller can tell): a
-- partial write queues its rest, so the stream never holds half a message.
local function send_now(pipe, data)
  local n, err, code = pipe:try_write(data)
  if not n then return nil, err, code end
  if n < #data then
    pipe:write(data:sub(n + 1))
    -- The rest goes out only when the loop runs again: too late.
    return nil, "EAGAIN: resource temporarily unavailable", "EAGAIN"
  end
  return true
end

local function timed_out()
  return nil, "ETIMEDOUT: connection timed out", "ETIMEDOUT"
end

---Sends msg and waits for its answer, the first message is_answer(m)
---accepts, blocking the whole process for at most `timeout` seconds.
---For callers that can neither yield nor run the loop (libedit's
---completion callback): everything else stops meanwhile, so keep it short.
---Every other message read meanwhile is appended to `queue`, in order,
---for the caller to handle afterwards, and `false` is appended once the
---stream has ended or gone bad. `split` must be the splitter of the pipe's
---read callback, so that a line cut between the two readers is rebuilt.
---@param pipe userdata a connected luv pipe (its read callback may be on)
---@param split fun(data: string): table[], string?
---@param msg table
---@param is_answer fun(m: table): boolean
---@param timeout number seconds
---@param queue table
---@return table? answer or nil, message, code (ETIMEDOUT, EAGAIN, EOF...)
function M.ask(pipe, split, msg, is_answer, timeout, queue)
  check.arg(1, "ask", pipe, "userdata")
  check.arg(2, "ask", split, "function")
  check.arg(3, "ask", msg, "table")
  check.arg(4, "ask", is_answer, "function")
  check.arg(5, "ask", timeout, "number")
  check.arg(6, "ask", queue, "table")
  local fd, err, code = pipe:fileno()
  if not fd then return nil, err, code end
  local ok
  ok, err, code = send_now(pipe, M.encode(msg))
  if not ok then return nil, err, code end
  local read_wait = require("tycho.repl.line").read_wait
  local deadline = uv.hrtime() + math.floor(timeout * 1e9)
  local answer
  while not answer do
    -- Bounded by the deadline even when the peer never stops sending.
    local left = deadline - uv.hrtime()
    if left <= 0 then return timed_out() end
    local data, rerr, rcode = read_wait(fd, left / 1e9)
    if not data then return nil, rerr, rcode end
    if data == "" then
      queue[#queue + 1] = false
      return nil, "EOF: end of file", "EOF"
    end
    local msgs, bad = split(data)
    for _, m in ipairs(msgs) do
      if not answer and is_answer(m) then answer = m else queue[#queue + 1] = m end
    end
    if bad then
      queue[#queue + 1] = false
      if not answer then return nil, "EPROTO: " .. bad, "EPROTO" end
    end
  end
  return answer
end

return M
