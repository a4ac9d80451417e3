-- wrk script for tests/deploy/scaleout_test.sh: POSTs one image (path in SCALEOUT_IMAGE)
-- to the URL wrk was given and prints one parseable line with the failures a client
-- would see: answers with a 4xx or 5xx status and socket errors (connect, read, write, timeout).
local f = assert(io.open(os.getenv("SCALEOUT_IMAGE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/png"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("SCALEOUT requests=%d status_errors=%d sockerr=%d p99ms=%.1f\n",
    summary.requests, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(99) / 1000))
end
