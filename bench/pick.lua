-- wrk script for Lector's benchmark.
--
-- Every request picks a random line of BENCH_LIST (a card number or a search term drawn from the
-- seeded data), percent-encodes it, appends it to BENCH_PREFIX (e.g. `/api/v1/readers/by-card/`
-- or `/api/v1/readers?q=`), then BENCH_SUFFIX if set (e.g. `?contacts=full`), and sends `Authorization: Bearer $BENCH_TOKEN` when BENCH_TOKEN is set
-- and `Cookie: $BENCH_COOKIE` when BENCH_COOKIE is set (a staff session, for HTML pages).
-- `done` prints one machine-readable line:
--   BENCH p50_us=… p99_us=… rps=… requests=… non2xx=… socket_errors=…

local thread_no = 0

function setup(thread)
  thread_no = thread_no + 1
  thread:set("thread_no", thread_no)
end

local items = {}
local prefix = "/"
local suffix = ""
local headers = {}

local function encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function init(args)
  local list = os.getenv("BENCH_LIST")
  prefix = os.getenv("BENCH_PREFIX") or "/"
  suffix = os.getenv("BENCH_SUFFIX") or ""
  local token = os.getenv("BENCH_TOKEN")
  if token and token ~= "" then
    headers["Authorization"] = "Bearer " .. token
  end
  local cookie = os.getenv("BENCH_COOKIE")
  if cookie and cookie ~= "" then
    headers["Cookie"] = cookie
  end
  local f = assert(io.open(list, "r"), "cannot open BENCH_LIST " .. tostring(list))
  for line in f:lines() do
    line = line:gsub("%s+$", "")
    if line ~= "" then
      items[#items + 1] = prefix .. encode(line) .. suffix
    end
  end
  f:close()
  assert(#items > 0, "BENCH_LIST is empty: " .. tostring(list))
  math.randomseed(os.time() * 1000 + (thread_no or 0) * 7919)
end

function request()
  return wrk.format("GET", items[math.random(#items)], headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "BENCH p50_us=%d p99_us=%d rps=%.1f requests=%d non2xx=%d socket_errors=%d\n",
    latency:percentile(50), latency:percentile(99), summary.requests / secs, summary.requests,
    e.status, e.connect + e.read + e.write + e.timeout))
end
