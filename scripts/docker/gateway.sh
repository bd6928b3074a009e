#!/bin/bash
# gateway.sh -- the gateway image's entry point: one socat per GATEWAY_ROUTES entry ("listen:host:port"), stopped together on SIGTERM.
set -u
pids=()
for route in ${GATEWAY_ROUTES:?set GATEWAY_ROUTES, e.g. "3000:order:3000"}; do
    IFS=: read -r listen host port <<< "$route"
    socat -d "TCP-LISTEN:${listen},fork,reuseaddr" "TCP:${host}:${port},connect-timeout=2" &
    pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null; exit 0' TERM INT
wait -n
echo "gateway: a socat exited; stopping" >&2
kill "${pids[@]}" 2>/dev/null
exit 1
