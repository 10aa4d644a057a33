# shellcheck shell=bash
# shellcheck disable=SC2034  # variables set here are read by the scripts that source it
# Shared by scripts/run-local (`make run`) and scripts/run-demo (`make demo`):
# register machines, start gpuhubd and agents with their data in ./var/, report
# what came up, and stop everything on Ctrl-C. Source it from the repository
# root after `set -euo pipefail`.
#   GPUHUB_LISTEN=HOST:PORT   where gpuhubd listens (default 127.0.0.1:8080)
#   GPUHUB_BUILD_DIR=DIR      where the binaries are (default build/release)

build_dir=${GPUHUB_BUILD_DIR:-build/release}
gpuhubd=$build_dir/apps/gpuhubd/gpuhubd
agent_bin=$build_dir/apps/gpuhub-agent/gpuhub-agent
data=var
listen=${GPUHUB_LISTEN:-127.0.0.1:8080}
python=/usr/bin/python3  # Debian's; scripts/install-deps makes sure it is there

server_pid=
agent_pids=()
agent_ids=()
agent_logs=()
addr=       # HOST:PORT gpuhubd reports it listens on
client=     # HOST:PORT to reach it from this machine
gpu_total=  # GPUs of the first machine reported (report_machines)

for bin in "$gpuhubd" "$agent_bin"; do
  [[ -x $bin ]] || { echo "$bin is missing; build first (make build)" >&2; exit 1; }
done
mkdir -p "$data"

# Stops the agents, then gpuhubd, and waits for them (each by its own pid).
stop_all() {
  local pid
  for pid in "${agent_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${agent_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  agent_pids=()
  if [[ -n $server_pid ]]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
}
trap stop_all EXIT
trap 'echo; echo "stopping..."; exit 0' INT TERM

# A machine id (1-64 of letters, digits, . _ -, starting with a letter or
# digit) made from this host's short name.
local_machine_id() {
  local name
  name=$(hostname -s 2>/dev/null || hostname 2>/dev/null || true)
  name=$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '-' | sed 's/^[^A-Za-z0-9]*//' | cut -c1-64)
  printf '%s\n' "${name:-localhost}"
}

# ensure_machine ID TOKEN_FILE: makes sure machine ID is registered in $data
# and its agent token is in TOKEN_FILE (mode 0600). Reuses both when present;
# rotates the token when the machine exists but its token file is gone.
# Runs `gpuhubd machine ...`, which works on the data dir directly: call it
# before gpuhubd starts (a running gpuhubd would not see the change).
ensure_machine() {
  local id=$1 token_file=$2 verb out list
  # Fails (and says why) when a gpuhubd already runs on $data.
  list=$("$gpuhubd" machine list --data "$data") || {
    echo "cannot read the machines in $data/ (is make run or make demo already running?)" >&2
    exit 1
  }
  if cut -f1 <<<"$list" | grep -qxF -- "$id"; then
    [[ -s $token_file ]] && return 0
    verb=rotate-token
  else
    verb=add
  fi
  out=$("$gpuhubd" machine "$verb" "$id" --data "$data") || {
    echo "gpuhubd machine $verb $id failed" >&2
    exit 1
  }
  (umask 077 && printf '%s\n' "$(tail -n 1 <<<"$out")" >"$token_file.tmp")
  mv -f "$token_file.tmp" "$token_file"
  if [[ $verb == add ]]; then
    echo "registered machine $id; its agent token is in $token_file"
  else
    echo "machine $id had no token file: gave it a new token, in $token_file"
  fi
}

# Starts gpuhubd (its log goes to the terminal and to $data/gpuhubd.log) and
# waits until it listens; sets $addr and $client.
start_server() {
  local log=$data/gpuhubd.log offset
  touch "$log"
  offset=$(($(stat -c %s "$log") + 1))  # only this run's lines count
  # tee ignores Ctrl-C so that gpuhubd's shutdown lines still reach the log.
  "$gpuhubd" --listen "$listen" --data "$data" > >(trap '' INT && exec tee -a "$log") 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    addr=$(tail -c +"$offset" "$log" | grep -o 'listening on [^ ]*' | tail -n 1 | cut -d' ' -f3 || true)
    [[ -n $addr ]] && break
    kill -0 "$server_pid" 2>/dev/null || { echo "gpuhubd failed to start; see $log" >&2; exit 1; }
    sleep 0.1
  done
  [[ -n $addr ]] || { echo "gpuhubd did not start listening; see $log" >&2; exit 1; }
  # gpuhubd logs HOST:PORT unbracketed; reach a wildcard address on loopback.
  local host=${addr%:*} port=${addr##*:}
  case $host in
    0.0.0.0) host=127.0.0.1 ;;
    ::) host='[::1]' ;;
    *:*) host="[$host]" ;;
  esac
  client=$host:$port
}

# start_agent ID TOKEN_FILE LOG [AGENT FLAGS...]: starts an agent for machine ID;
# its lease state lives beside its log (agent-state-ID/).
start_agent() {
  local id=$1 token_file=$2 log=$3
  shift 3
  "$agent_bin" --server "ws://$client" --token-file "$token_file" \
    --state-dir "$(cd "$(dirname "$log")" && pwd)/agent-state-$id" "$@" >"$log" 2>&1 &
  agent_pids+=($!)
  agent_ids+=("$id")
  agent_logs+=("$log")
}

# Prints unix:///PATH of this host's Docker Engine API socket for the agent's
# --docker-host: $DOCKER_HOST when it is unix://, else the first of Docker's,
# root Podman's and this user's Podman socket that is a socket this user may
# use. Prints nothing (and returns 1) when there is none.
host_docker_host() {
  local sock candidates=()
  [[ ${DOCKER_HOST:-} == unix://* ]] && candidates+=("${DOCKER_HOST#unix://}")
  candidates+=(/var/run/docker.sock /run/podman/podman.sock)
  [[ -n ${XDG_RUNTIME_DIR:-} ]] && candidates+=("$XDG_RUNTIME_DIR/podman/podman.sock")
  for sock in "${candidates[@]}"; do
    if [[ -S $sock && -r $sock && -w $sock ]]; then
      printf 'unix://%s\n' "$sock"
      return 0
    fi
  done
  return 1
}

# The admin password, when this script can know it.
admin_password() {
  if [[ -n ${GPUHUB_ADMIN_PASSWORD:-} ]]; then
    printf '%s\n' "$GPUHUB_ADMIN_PASSWORD"
  elif [[ -f $data/initial-admin-password ]]; then
    head -n 1 "$data/initial-admin-password"
  fi
}

# Waits (at most 15 s) until every started agent is connected and its machine
# online with its inventory in /api/machines/info, and prints one line per
# machine. Sets $gpu_total to the GPUs of the first (local) machine. Falls
# back to the agents' "connected to" log lines when it cannot sign in.
report_machines() {
  local i
  for i in "${!agent_ids[@]}"; do
    for _ in $(seq 150); do
      grep -q 'connected to' "${agent_logs[$i]}" && break
      kill -0 "${agent_pids[$i]}" 2>/dev/null || break
      sleep 0.1
    done
    if ! grep -q 'connected to' "${agent_logs[$i]}"; then
      echo "the agent of machine ${agent_ids[$i]} did not connect; see ${agent_logs[$i]}:" >&2
      tail -n 5 "${agent_logs[$i]}" >&2
    fi
  done
  local summary
  summary=$("$python" - "$client" "$(admin_password)" "${agent_ids[@]}" <<'EOF'
import json, sys, time, urllib.request

base, password, ids = "http://" + sys.argv[1], sys.argv[2], sys.argv[3:]

def call(path, body=None, token=None):
    req = urllib.request.Request(base + path, data=body and json.dumps(body).encode())
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)

try:
    token = call("/api/auth/login", {"account": "admin", "password": password})["access_token"]
except Exception:
    sys.exit(1)  # password unknown or changed: the caller falls back to the logs
deadline, machines = time.monotonic() + 15, {}
while True:
    machines = {m["id"]: m for m in call("/api/machines/info", token=token)}
    ready = [i for i in ids if machines.get(i, {}).get("online") and machines[i].get("cpu")]
    if len(ready) == len(ids) or time.monotonic() > deadline:
        break
    time.sleep(0.2)
for i in ids:
    m = machines.get(i)
    if not (m and m.get("online") and m.get("cpu")):
        print(f"machine {i} is NOT online (yet)\t-")
        continue
    names = {}
    for g in m["gpu"]:
        names[g["name"]] = names.get(g["name"], 0) + 1
    gpus = ", ".join(f"{n}x {name}" for name, n in names.items()) or "no GPUs"
    print(f"machine {i} is connected: {gpus}\t{len(m['gpu'])}")
EOF
  ) || summary=
  if [[ -n $summary ]]; then
    cut -f1 <<<"$summary"
    gpu_total=$(head -n 1 <<<"$summary" | cut -f2)
  else
    for i in "${!agent_ids[@]}"; do
      grep -q 'connected to' "${agent_logs[$i]}" && echo "machine ${agent_ids[$i]} is connected"
    done
  fi
}

print_banner() {
  echo
  echo "gpuhub is running at http://$client/"
  local pw
  pw=$(admin_password)
  if [[ -n ${GPUHUB_ADMIN_PASSWORD:-} ]]; then
    echo "sign in as admin with the password from GPUHUB_ADMIN_PASSWORD"
  elif [[ -n $pw ]]; then
    echo "sign in as admin with the password in $data/initial-admin-password: $pw"
  else
    echo "sign in as admin (the password was set with GPUHUB_ADMIN_PASSWORD or changed since)"
  fi
}

# Stays in the foreground until Ctrl-C (or until gpuhubd ends by itself).
wait_for_server() {
  echo "press Ctrl-C to stop"
  local rc=0
  wait "$server_pid" || rc=$?
  server_pid=
  echo "gpuhubd exited ($rc); stopping the agents" >&2
  exit "$rc"
}
