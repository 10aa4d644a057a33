# shellcheck shell=bash
# Shared by the bench/ scripts: find the binaries, start servers on 127.0.0.1
# port 0, read the port they chose, log in, run wrk and parse its output, and
# stop everything on exit. Source it; do not run it.
#
# Environment (all optional):
#   GPUHUB_BUILD_DIR  build tree with apps/gpuhubd/gpuhubd and bench/hello_server
#                     (default: build/release)
#   GPUHUBD, HELLO_SERVER  the binaries themselves, overriding GPUHUB_BUILD_DIR
#   BENCH_THREADS     I/O threads of both servers (default: nproc)
#   WRK_THREADS       wrk -t (default 2)
#   QUIET_PERCENT     wait_quiet's threshold of CPU busy with other work (15)
#   QUIET_TIMEOUT     how long wait_quiet waits for it, in seconds (120)
#   RETRIES           how often a measurement that other work disturbed (it
#                     used more than 5% of the CPUs meanwhile) is repeated (2)

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
BUILD_DIR=${GPUHUB_BUILD_DIR:-$REPO_DIR/build/release}
GPUHUBD=${GPUHUBD:-$BUILD_DIR/apps/gpuhubd/gpuhubd}
HELLO_SERVER=${HELLO_SERVER:-$BUILD_DIR/bench/hello_server}
BENCH_THREADS=${BENCH_THREADS:-$(nproc)}
WRK_THREADS=${WRK_THREADS:-2}
ADMIN_PASSWORD=benchpass1

BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/gpuhub-bench.XXXXXX")
BENCH_PIDS=()

bench_cleanup() {
  local pid
  for pid in "${BENCH_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${BENCH_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$BENCH_TMP"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

die() {
  echo "error: $*" >&2
  exit 1
}

require_tools() {
  local t
  for t in wrk curl; do
    command -v "$t" >/dev/null || die "$t is not installed"
  done
  [[ -x $GPUHUBD ]] || die "$GPUHUBD not found: build first (cmake --preset release && cmake --build --preset release)"
  [[ -x $HELLO_SERVER ]] || die "$HELLO_SERVER not found: build first"
}

# cpu_busy_percent: how busy all CPUs were over the next second, 0-100.
cpu_busy_percent() {
  local a b
  a=$(head -n1 /proc/stat)
  sleep 1
  b=$(head -n1 /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN {
    n = split(a, x); split(b, y); total = 0
    for (i = 2; i <= n && i <= 9; i++) total += y[i] - x[i]
    idle = (y[5] - x[5]) + (y[6] - x[6])
    printf "%d\n", (total > 0) ? 100 * (total - idle) / total : 0 }'
}

# wait_quiet: the machine is shared (builds, tests); wait until other work uses
# less than QUIET_PERCENT of the CPUs before a measurement, and warn if it never
# does. Our servers must be idle when this is called.
wait_quiet() {
  local limit=${QUIET_PERCENT:-15} deadline=$((SECONDS + ${QUIET_TIMEOUT:-120})) busy
  busy=$(cpu_busy_percent)
  if ((busy < limit)); then
    return
  fi
  echo "  (machine ${busy}% busy with other work; waiting up to ${QUIET_TIMEOUT:-120} s for it to settle)"
  while ((SECONDS < deadline)); do
    busy=$(cpu_busy_percent)
    if ((busy < limit)); then
      return
    fi
  done
  echo "  WARNING: machine still ${busy}% busy with other work; results are disturbed"
}

# wait_port PID LOGFILE: prints the port the server listens on. Reads the
# "listening on 127.0.0.1:PORT" line; if the server does not log it (gpuhubd
# logs it at info level, so not with --log-level warn), asks ss for the
# listening socket that PID owns.
wait_port() {
  local pid=$1 log=$2 port i
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || {
      cat "$log" >&2
      die "server (pid $pid) exited during start-up"
    }
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$log" | head -n1)
    if [[ -z $port ]] && command -v ss >/dev/null; then
      port=$(ss -Hltnp 2>/dev/null | grep "pid=$pid," |
        sed -n 's/.*127\.0\.0\.1:\([0-9][0-9]*\) .*/\1/p' | head -n1)
    fi
    if [[ -n $port ]]; then
      echo "$port"
      return
    fi
    sleep 0.05
  done
  cat "$log" >&2
  die "server (pid $pid) did not report its port within 10 s"
}

# start_hello: starts hello_server, sets HELLO_PORT.
start_hello() {
  local log=$BENCH_TMP/hello.log
  : >"$log"
  "$HELLO_SERVER" --listen 127.0.0.1:0 --threads "$BENCH_THREADS" >"$log" 2>&1 &
  BENCH_PIDS+=("$!")
  # shellcheck disable=SC2034 # used by the scripts that source this
  HELLO_PORT=$(wait_port "$!" "$log")
}

# start_gpuhubd: starts gpuhubd on a fresh data dir, with the extra arguments
# in the array GPUHUBD_ARGS if set; sets GPUHUBD_PORT and GPUHUBD_PID.
start_gpuhubd() {
  local data=$BENCH_TMP/data log=$BENCH_TMP/gpuhubd.log
  rm -rf "$data"
  : >"$log"
  GPUHUB_ADMIN_PASSWORD=$ADMIN_PASSWORD "$GPUHUBD" --listen 127.0.0.1:0 --data "$data" \
    --log-level warn --io-threads "$BENCH_THREADS" ${GPUHUBD_ARGS[@]+"${GPUHUBD_ARGS[@]}"} >"$log" 2>&1 &
  GPUHUBD_PID=$!
  BENCH_PIDS+=("$GPUHUBD_PID")
  # shellcheck disable=SC2034 # used by the scripts that source this
  GPUHUBD_PORT=$(wait_port "$GPUHUBD_PID" "$log")
}

# login PORT: prints the admin's access token.
login() {
  local body token
  body=$(curl -sS --fail-with-body -H 'Content-Type: application/json' \
    -d "{\"account\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}" \
    "http://127.0.0.1:$1/api/auth/login") || die "login failed: $body"
  token=$(sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p' <<<"$body")
  [[ -n $token ]] || die "no access_token in login answer: $body"
  # Check it before measuring: wrk counts 401s as requests.
  curl -sS --fail -o /dev/null -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$1/api/user/info" || die "GET /api/user/info with the token failed"
  echo "$token"
}

# our_ticks: CPU ticks used so far by the processes in BENCH_PIDS.
our_ticks() {
  local pid sum=0 t
  for pid in "${BENCH_PIDS[@]}"; do
    t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) && sum=$((sum + t))
  done
  echo "$sum"
}

# machine_ticks: "BUSY TOTAL" ticks of all CPUs so far; busy is user, nice,
# system and steal (not irq/softirq, where loopback traffic of ours lands).
machine_ticks() { awk 'NR == 1 {print $2 + $3 + $4 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }

# run_wrk OUTFILE WRK_ARGS...: runs wrk --latency, keeps its output in OUTFILE,
# and fails if any response was not 2xx/3xx. Sets OTHER_LOAD to the share of
# the machine (percent) that other work (not our servers, not this wrk, not
# the processes in BENCH_PIDS) used meanwhile, and OTHER_NOTE to a note for
# the results line when that is over 5%.
# shellcheck disable=SC2034 # OTHER_LOAD and OTHER_NOTE are read by the scripts
run_wrk() {
  local out=$1 m0 m1 p0 p1 wrk_cpu hz
  shift
  hz=$(getconf CLK_TCK)
  m0=$(machine_ticks) p0=$(our_ticks)
  TIMEFORMAT='%U %S'
  { time wrk --latency "$@" >"$out" 2>&1; } 2>"$out.time" || {
    cat "$out" >&2
    die "wrk failed"
  }
  m1=$(machine_ticks) p1=$(our_ticks)
  wrk_cpu=$(awk -v hz="$hz" '{printf "%d", ($1 + $2) * hz}' "$out.time")
  OTHER_LOAD=$(awk -v m0="$m0" -v m1="$m1" -v ours=$((p1 - p0 + wrk_cpu)) 'BEGIN {
    split(m0, a, " "); split(m1, b, " "); total = b[2] - a[2]
    other = (b[1] - a[1]) - ours; if (other < 0) other = 0
    printf "%d", (total > 0) ? 100 * other / total : 0 }')
  OTHER_NOTE=""
  if ((OTHER_LOAD > 5)); then
    OTHER_NOTE=" [DISTURBED: other work used ${OTHER_LOAD}% of the CPUs]"
  fi
  if grep -q 'Non-2xx or 3xx responses' "$out"; then
    cat "$out" >&2
    die "wrk saw error responses"
  fi
}

# wrk_rps FILE: requests per second.
wrk_rps() { awk '/^Requests\/sec:/ {print $2}' "$1"; }

# wrk_pct FILE PCT: latency percentile (50, 75, 90, 99) in milliseconds.
wrk_pct() {
  awk -v p="$2%" '
    $1 == p && NF == 2 {
      v = $2; unit = v; sub(/^[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v)
      f = (unit == "us") ? 0.001 : (unit == "ms") ? 1 : (unit == "s") ? 1000 : (unit == "m") ? 60000 : -1
      if (f < 0) { print "?"; exit }
      printf "%.3f\n", v * f; exit
    }' "$1"
}

# wrk_errors FILE: socket errors line, or "none".
wrk_errors() {
  local e
  e=$(grep 'Socket errors' "$1" | sed 's/^ *//') || true
  echo "${e:-none}"
}

# median VALUES...: the median (mean of the middle two for an even count).
median() {
  printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {
    if (NR % 2) printf "%.2f\n", a[(NR + 1) / 2]; else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
