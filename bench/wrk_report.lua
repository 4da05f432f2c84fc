-- wrk script for bench/server_bench.py: prints one machine-readable line
-- ("WRK_JSON {...}") with counts and latency percentiles when the run ends.
-- With WRK_UNIQUE set, every request appends a different, absent label id
-- to the URL's label_ids (",{base + n}"), so no two requests share a cache
-- entry: each one is a real, uncached filter.
local unique = os.getenv("WRK_UNIQUE")
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end

if unique then
  local counter = 0
  local base = tonumber(unique)
  function request()
    counter = counter + 1
    -- ids stay inside int16 and far from the VISTA3D range (1..132)
    return wrk.format(nil, wrk.path .. "," .. (base + (tid or 0) * 4000 + counter))
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors_connect":%d,' ..
    '"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
