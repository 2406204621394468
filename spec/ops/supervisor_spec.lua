-- Specs for the parts of lua/tycho/supervisor.lua that need no processes
-- (tests/e2e/test_workers.py drives the rest with real ones).
local supervisor = require "tycho.supervisor"

describe("tycho.supervisor", function()
  it("gives a worker the run arguments minus --workers, plus --worker-id", function()
    assert.same({ "run", "app.lua", "--port", "0", "--grace", "3", "--worker-id", "2" },
      supervisor.worker_args({ "app.lua", "--workers", "4", "--port", "0", "--grace", "3" }, 2))
  end)

  it("makes --repl PATH per worker and keeps the script's own arguments last", function()
    assert.same({ "run", "app.lua", "--repl", "/run/app.sock.3", "--watch", "--worker-id", "3",
      "--", "--workers", "x" },
      supervisor.worker_args({ "--workers", "auto", "app.lua", "--repl", "/run/app.sock",
        "--watch", "--", "--workers", "x" }, 3))
  end)

  it("counts the cores for --workers auto", function()
    local n = supervisor.cores()
    assert.equal("integer", math.type(n))
    assert.is_true(n >= 1)
  end)
end)
