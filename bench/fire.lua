-- wrk script: POST triggers round the request_info <-> customer_replied loop.
--
-- Each wrk thread owns every n-th ticket of the config and keeps a queue of tickets whose
-- last request has been answered; a request takes a ticket from that queue and the answer
-- (its "id" and "state") puts it back. So a ticket is never in flight twice, no request can
-- meet a ticket in the wrong state, and with twice as many tickets as connections the queue
-- never runs dry. The config file (a Lua table) is the script's first argument.
--
-- Steady state: the first `warmup` seconds (connections being admitted, caches warming) are
-- not measured. Because a ticket is in flight at most once, an answer's ticket id names its
-- request, so latency is timed here (LuaJIT ffi, CLOCK_MONOTONIC) for requests sent after the
-- warm-up; wrk's own whole-run figures are reported beside them.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local ts = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

local cfg
local queue, head, tail = {}, 1, 0
local last
local sent = {}
local counter = 0
local threads = {}

-- per thread, read by done() through thread:get()
statuses = {}
lat = {}
lat_n = 0
answered = 0
start_at = 0
last_at = 0

function setup(thread)
  thread:set("thread_index", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  cfg = dofile(args[1])
  start_at = now() + cfg.warmup
  local idx = thread_index or 0
  for i, t in ipairs(cfg.tickets) do
    if (i - 1) % cfg.threads == idx then
      tail = tail + 1
      queue[tail] = t
    end
  end
end

function request()
  local t
  if head <= tail then
    t = queue[head]
    queue[head] = nil
    head = head + 1
  else
    t = last -- only after errors: the ticket's answer never came back
  end
  last = t
  sent[t[1]] = now()
  local headers = { ["Content-Type"] = "application/json" }
  if t[2] == "l1_triage" then
    headers["Authorization"] = "Bearer " .. cfg.agent
    return wrk.format("POST", cfg.prefix .. t[1] .. "/triggers/request_info", headers, cfg.note)
  end
  headers["Authorization"] = "Bearer " .. cfg.customer
  return wrk.format("POST", cfg.prefix .. t[1] .. "/triggers/customer_replied", headers, "{}")
end

function response(status, headers, body)
  local at = now()
  statuses[status] = (statuses[status] or 0) + 1
  if at >= start_at then
    answered = answered + 1
    last_at = at
  end
  if status >= 200 and status < 300 then
    local id = body:match('"id":%s*(%d+)')
    local state = body:match('"state":%s*"([%w_]+)"')
    if id and state then
      id = tonumber(id)
      local t_sent = sent[id]
      if t_sent and t_sent >= start_at then
        lat_n = lat_n + 1
        lat[lat_n] = (at - t_sent) * 1000
      end
      tail = tail + 1
      queue[tail] = { id, state }
    end
  end
end

local function pct(sorted, q)
  if #sorted == 0 then
    return 0 / 0
  end
  local k = math.floor(q / 100 * #sorted + 0.5)
  if k < 1 then k = 1 end
  if k > #sorted then k = #sorted end
  return sorted[k]
end

function done(summary, latency, requests)
  local e = summary.errors
  local counts, all, n, first, final = {}, {}, 0, nil, 0
  for _, thread in ipairs(threads) do
    for code, c in pairs(thread:get("statuses")) do
      counts[code] = (counts[code] or 0) + c
    end
    for _, v in ipairs(thread:get("lat")) do
      table.insert(all, v)
    end
    n = n + thread:get("answered")
    local s = thread:get("start_at")
    if first == nil or s < first then first = s end
    if thread:get("last_at") > final then final = thread:get("last_at") end
  end
  table.sort(all)
  local sum, parts, bad = 0, {}, 0
  for _, v in ipairs(all) do sum = sum + v end
  for code, c in pairs(counts) do
    table.insert(parts, string.format('"%d":%d', code, c))
    if code < 200 or code >= 300 then bad = bad + c end
  end
  io.write(string.format(
    'BENCH {"statuses":{%s},"requests":%d,"duration_s":%.6f,"status_errors":%d,'
      .. '"socket_errors":%d,"timeouts":%d,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,'
      .. '"max_ms":%.3f,"mean_ms":%.3f,"whole_requests":%d,"whole_p99_ms":%.3f,'
      .. '"whole_max_ms":%.3f}\n',
    table.concat(parts, ","), n, math.max(final - (first or 0), 1e-9), bad,
    e.connect + e.read + e.write, e.timeout, pct(all, 50), pct(all, 90), pct(all, 99),
    all[#all] or 0 / 0, (#all > 0) and sum / #all or 0 / 0, summary.requests,
    latency:percentile(99) / 1e3, latency.max / 1e3))
end
