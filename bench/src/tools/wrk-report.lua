-- rampart-bench's report hook for wrk: counts the responses by status in each thread, then
-- prints one JSON line (after wrk's own text summary) for rampart-bench to read.

local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

-- Each thread runs in a Lua state of its own; `done` collects them with thread:get.
statuses = {}

function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
    local counts = {}
    for _, t in ipairs(threads) do
        for code, n in pairs(t:get("statuses")) do
            counts[code] = (counts[code] or 0) + n
        end
    end
    local status = {}
    for code, n in pairs(counts) do
        table.insert(status, string.format('"%d":%d', code, n))
    end
    local e = summary.errors
    io.write(string.format(
        'rampart-bench-wrk {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"status":{%s},"latency_us":{"p50":%f,"p90":%f,"p99":%f,"p999":%f,"max":%f,"mean":%f}}\n',
        summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
        table.concat(status, ","),
        latency:percentile(50), latency:percentile(90), latency:percentile(99),
        latency:percentile(99.9), latency.max, latency.mean))
end
