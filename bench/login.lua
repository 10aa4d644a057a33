-- wrk script for bench/login-storm: every request is a correct-password login
-- of the admin (gpuhubd rate-limits failed logins only), so each one costs an
-- argon2id verification on gpuhubd's worker pool, unless gpuhubd refuses it
-- with 503 because its worker queue is full. A refused client waits as
-- Retry-After says before its next login, as a well-behaved client does (wrk
-- has no per-connection state here: the pause goes to the next connection
-- that sends, which is nearly always the refused one). done() prints
-- "logins: N ok, N busy (503), N other" for bench/login-storm.
wrk.method = "POST"
wrk.body = '{"account":"admin","password":"benchpass1"}'
wrk.headers["Content-Type"] = "application/json"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok, busy, other, backoff = 0, 0, 0, 0
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  elseif status == 503 then
    busy = busy + 1
    backoff = 1000 * (tonumber(headers["Retry-After"]) or 1)
  else
    other = other + 1
  end
end

function delay()
  local d = backoff
  backoff = 0
  return d
end

function done(summary, latency, requests)
  local o, b, x = 0, 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok")
    b = b + t:get("busy")
    x = x + t:get("other")
  end
  io.write(string.format("logins: %d ok, %d busy (503), %d other\n", o, b, x))
end
