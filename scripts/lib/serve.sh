# serve.sh: start and stop an `embedd serve` for the scripts that test a real
# server (walkthrough.sh, openai_sdk_test.sh). Source it; it defines:
#
#   embedd_start LOG CMD...   runs CMD (an embedd serve) in the background, its
#                             stderr to LOG; waits until /readyz answers 200 and
#                             sets EMBEDD_PID, EMBEDD_GRPC and EMBEDD_HTTP (the
#                             host:port addresses the server logged)
#   embedd_stop               SIGTERM, then checks: exit status 0, no process
#                             left, both ports free
#   embedd_cleanup_on_exit DIR
#                             traps EXIT: SIGKILLs a server still running and
#                             removes DIR (the script's scratch directory)

embedd_cleanup_on_exit() {
  EMBEDD_PID="" EMBEDD_SCRATCH=$1
  trap embedd_cleanup EXIT
}

embedd_cleanup() {
  if [ -n "$EMBEDD_PID" ]; then kill -KILL "$EMBEDD_PID" 2>/dev/null || true; fi
  rm -rf "$EMBEDD_SCRATCH"
}

embedd_start() {
  local log=$1
  shift
  "$@" 2>"$log" &
  EMBEDD_PID=$!
  EMBEDD_GRPC="" EMBEDD_HTTP=""
  local i
  for i in $(seq 1 1200); do # 2 minutes at most
    if ! kill -0 "$EMBEDD_PID" 2>/dev/null; then
      echo "embedd serve exited during start-up; its log:" >&2
      cat "$log" >&2
      return 1
    fi
    if [ -z "$EMBEDD_HTTP" ]; then
      read -r EMBEDD_GRPC EMBEDD_HTTP < <(/usr/bin/python3 -c '
import json, sys
for line in open(sys.argv[1]):
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    if rec.get("msg") == "embedd: listening":
        print(rec["grpc"], rec["http"])
        break
' "$log") || true
    fi
    if [ -n "$EMBEDD_HTTP" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$EMBEDD_HTTP/readyz")" = 200 ]; then
      return 0
    fi
    sleep 0.1
  done
  echo "embedd serve not ready within 2 minutes; its log:" >&2
  cat "$log" >&2
  return 1
}

embedd_stop() {
  local rc=0
  kill -TERM "$EMBEDD_PID"
  wait "$EMBEDD_PID" || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "embedd serve exited $rc after SIGTERM, want 0" >&2
    return 1
  fi
  if kill -0 "$EMBEDD_PID" 2>/dev/null || [ -n "$(ps -o pid= --ppid "$EMBEDD_PID" 2>/dev/null)" ]; then
    echo "a process is left after SIGTERM (pid $EMBEDD_PID or a child)" >&2
    return 1
  fi
  local addr
  for addr in "$EMBEDD_GRPC" "$EMBEDD_HTTP"; do
    if ! /usr/bin/python3 -c '
import socket, sys
host, port = sys.argv[1].rsplit(":", 1)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, int(port)))
' "$addr"; then
      echo "port $addr is still taken after embedd serve exited" >&2
      return 1
    fi
  done
  EMBEDD_PID=""
}
