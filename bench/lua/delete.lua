-- DELETE /chats/{id}, walking through the reserved pool first..last: each id once.
-- Arguments: first last. Thread t of n deletes first + t, first + t + n, ...; an id past
-- `last` is still sent, so that a pool that runs out shows up as 404s (run failed) rather
-- than as a quietly shorter run. done() reports the highest id sent as `last_id`.
local common = require("common")
setup = common.setup

function init(args)
  step = common.thread_count()
  next_id = tonumber(args[1]) + tid
  last_id = 0
end

function request()
  last_id = next_id
  next_id = next_id + step
  return wrk.format("DELETE", "/chats/" .. last_id)
end

function done(summary, latency, requests)
  local highest = 0
  for _, thread in ipairs(common.threads) do
    highest = math.max(highest, thread:get("last_id") or 0)
  end
  common.report(summary, latency, { last_id = highest })
end
