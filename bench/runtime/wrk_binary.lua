-- wrk script: POST a fixed Open Inference Protocol V2 body that uses the binary tensor data extension.
-- ANCHOR_BODY: the body file (JSON header followed by the raw tensors); ANCHOR_HEADER_LENGTH: the JSON
-- header's length in bytes (sent as Inference-Header-Content-Length). Prints the same ANCHOR_JSON line
-- as the peers driver's wrk_v2.lua.
local path = os.getenv("ANCHOR_BODY")
local f = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.headers["Inference-Header-Content-Length"] = assert(os.getenv("ANCHOR_HEADER_LENGTH"))

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'ANCHOR_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_timeout":%d,"non_2xx_3xx":%d,' ..
    '"lat_mean_us":%.1f,"lat_stdev_us":%.1f,"lat_max_us":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
