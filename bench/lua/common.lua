-- Shared by every bench script: numbers each wrk thread, and prints the run's summary as
-- one JSON line ("BENCH_RESULT {...}") from wrk's done() hook, for bench/wrk.py to read.
--
-- wrk runs setup() and done() in its main Lua state, and init()/request() in one Lua state
-- per thread; `threads` (main state) is how done() reads the threads' globals.
local M = {}

M.threads = {}
local started = 0

-- BENCH_AUTHORIZATION (environment; bench/wrk.py sets it), when not empty: the
-- Authorization header of every request, e.g. a user's token (bench/auth.py). wrk.format()
-- sends wrk.headers when given no headers; a script that gives its own adds it with
-- M.headers().
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization == "" then
  authorization = nil
end
wrk.headers["Authorization"] = authorization

function M.headers(headers)
  headers["Authorization"] = authorization
  return headers
end

-- Gives each thread its index `tid` (0-based) before its init() runs.
function M.setup(thread)
  thread:set("tid", started)
  started = started + 1
  table.insert(M.threads, thread)
end

-- How many threads wrk runs (-t); bench/wrk.py passes it in the environment.
function M.thread_count()
  return tonumber(os.getenv("WRK_THREADS") or "1")
end

local function number(value)
  if value ~= value or value == math.huge or value == -math.huge then
    return "null" -- NaN or infinite (e.g. the mean latency of a run with no requests)
  end
  return string.format("%.17g", value)
end

-- `extra` is an optional table of further numbers to report, e.g. from the threads.
function M.report(summary, latency, extra)
  local errors = summary.errors
  local fields = {
    requests = summary.requests,
    duration_us = summary.duration,
    bytes = summary.bytes,
    errors_connect = errors.connect,
    errors_read = errors.read,
    errors_write = errors.write,
    errors_status = errors.status, -- responses with a status of 400 or more
    errors_timeout = errors.timeout,
    latency_mean_us = latency.mean,
    latency_max_us = latency.max,
    p50_us = latency:percentile(50),
    p90_us = latency:percentile(90),
    p99_us = latency:percentile(99),
    p999_us = latency:percentile(99.9),
  }
  for name, value in pairs(extra or {}) do
    fields[name] = value
  end
  local parts = {}
  for name, value in pairs(fields) do
    parts[#parts + 1] = string.format("%q:%s", name, number(value))
  end
  io.write("BENCH_RESULT {" .. table.concat(parts, ",") .. "}\n")
end

function M.done(summary, latency, requests)
  M.report(summary, latency, nil)
end

return M
