-- The soak mix (mix.lua) over chats first..last, counting the responses by status: done()
-- reports `status_<code>` for each status seen (bench/deletes.py). Arguments: first last.
-- A script that defines response() makes wrk hand it every response, so the runs that need
-- no histogram use mixed.lua.
local common = require("common")
local mix = require("mix")
setup = common.setup
request = mix.request

function init(args)
  statuses = {}
  mix.init(args)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(common.threads) do
    for status, count in pairs(thread:get("statuses") or {}) do
      local name = "status_" .. status
      counts[name] = (counts[name] or 0) + count
    end
  end
  common.report(summary, latency, counts)
end
