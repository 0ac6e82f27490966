#!/bin/bash
# The README quickstart second half, verbatim, from an empty folder (ports 8000, 8100 and 8787 must be free):
# prints the seconds from `init` to each step and to the first delivered job, with `uptime` before and after.
# Background processes are stopped by their own pids. HEADRACE=path/to/headrace to use another install.
set -u
H=${HEADRACE:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/headrace}
dir=$(mktemp -d); cd "$dir"
uptime
start=$(date +%s.%N); ts() { echo "$1 starts at t=$(echo "$(date +%s.%N) - $start" | bc) s"; }
ts init; $H init > init.log 2>&1
$H dev windmill > wm.log 2>&1 & wm=$!
$H dev dodo > dodo.log 2>&1 & dd=$!
export WINDMILL_TOKEN=dev-token DODO_PAYMENTS_API_KEY=dev-dodo-key DODO_PAYMENTS_BASE_URL=http://127.0.0.1:8100
for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:8000/api/version && curl -s -o /dev/null http://127.0.0.1:8100/ && break; sleep 0.1; done
ts "connect windmill"; $H connect windmill --url http://127.0.0.1:8000 --workspace demo --token env:WINDMILL_TOKEN > cw.log 2>&1; echo "connect windmill rc=$?"
ts "connect dodo"; $H connect dodo --public-url http://127.0.0.1:8787/webhooks/dodo --api-key env:DODO_PAYMENTS_API_KEY --mode test > cd.log 2>&1; echo "connect dodo rc=$?"
ts serve; $H serve > serve.log 2>&1 & sv=$!
for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:8787/healthz && break; sleep 0.1; done
ts emit; $H dev dodo emit payment.succeeded > emit.log 2>&1; echo "emit rc=$?"
for i in $(seq 600); do $H events 2>/dev/null | grep -q delivered && break; sleep 0.1; done
end=$(date +%s.%N)
$H events | head -3
echo "first job delivered at t=$(echo "$end - $start" | bc) s"
uptime
kill $sv $dd $wm; wait 2>/dev/null
echo "$dir"
