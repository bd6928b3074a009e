#!/usr/bin/env bash
# stack.sh -- deploys docker-stack.yaml on a single-node Docker Swarm on this machine, and takes it down again.
#
#   scripts/docker/stack.sh up      Swarm if none (docker swarm init --advertise-addr 127.0.0.1),
#                                   images built locally, docker stack deploy, wait for every replica
#   scripts/docker/stack.sh down    docker stack rm, wait until its tasks and network are gone,
#                                   and leave the Swarm if `up` created it
#
# Environment: STACK_NAME (resilience), STACK_DB (mongo, or ferretdb: FerretDB
# in place of the mongo image, for machines that reach no registry), and the
# variables docker-stack.yaml reads (replicas, ports, CB_SHARED, DB_PORT;
# ENDPOINT_MODE is vip when the kernel has IPVS, else dnsrr, unless set).
# JAEGER_IMAGE=resilience-jaeger:2.12.0 and PROMETHEUS_IMAGE=resilience-prometheus:2.42
# use the images scripts/docker/base-images.sh builds here (made when missing)
# in place of the official ones. Prometheus's rules are PROMETHEUS_RULES
# (default scripts/prometheus/rules.yml); when that file is missing, `up` says
# so and gives Prometheus an empty rules file ($BUILD/prometheus-no-rules.yml).
# CONFIG_SUM, a checksum of the configuration files, names their Swarm configs.
# `up` records a Swarm it created in $BUILD/swarm-created; only then does
# `down` leave it, so a Swarm that was there before is never touched.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
STACK_NAME="${STACK_NAME:-resilience}"
STACK_DB="${STACK_DB:-mongo}"
MARK="${BUILD:-build}/swarm-created"
WAIT_S="${STACK_WAIT_S:-240}"

# The Swarm state of this engine: inactive, active, pending, ...
swarm_state() {
    docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null || echo unknown
}

# The -c arguments for docker stack deploy.
stack_files() {
    echo "-c docker-stack.yaml"
    [ "$STACK_DB" = ferretdb ] && echo "-c scripts/docker/stack.ferretdb.yaml"
    return 0
}

# Waits until every service of the stack runs all its replicas (bounded by WAIT_S).
wait_replicas() {
    local deadline=$((SECONDS + WAIT_S)) line pending
    while :; do
        pending=0
        while read -r line; do
            local name="${line%% *}" reps="${line##* }"
            [ "${reps%%/*}" = "${reps##*/}" ] || { pending=1; echo "stack: $name $reps"; }
        done < <(docker service ls --filter "label=com.docker.stack.namespace=$STACK_NAME" \
                     --format '{{.Name}} {{.Replicas}}')
        [ $pending -eq 0 ] && { echo "stack: every replica running"; return 0; }
        [ $SECONDS -ge $deadline ] && { echo "stack: replicas still missing after ${WAIT_S}s" >&2; return 1; }
        sleep 2
    done
}

up() {
    case "$(swarm_state)" in
        active) echo "stack: using the Swarm this engine is in" ;;
        inactive)
            docker swarm init --advertise-addr 127.0.0.1 >/dev/null
            mkdir -p "$(dirname "$MARK")"
            echo "created by scripts/docker/stack.sh up" > "$MARK"
            echo "stack: single-node Swarm created (advertise 127.0.0.1); stack-down leaves it" ;;
        *) echo "stack: the engine's Swarm state is $(swarm_state); fix that first" >&2; exit 1 ;;
    esac
    if [ "$STACK_DB" = ferretdb ]; then
        scripts/docker/base-images.sh debian
        scripts/docker/base-images.sh ferretdb
    fi
    case "${JAEGER_IMAGE:-}" in resilience-jaeger:*) scripts/docker/base-images.sh jaeger ;; esac
    case "${PROMETHEUS_IMAGE:-}" in resilience-prometheus:*) scripts/docker/base-images.sh prometheus ;; esac
    # Prometheus's rules: the file named, or an empty one (said) when scripts/prometheus/rules.yml is missing
    if [ -z "${PROMETHEUS_RULES:-}" ]; then
        if [ -f scripts/prometheus/rules.yml ]; then
            export PROMETHEUS_RULES=scripts/prometheus/rules.yml
        else
            mkdir -p "${BUILD:-build}"
            export PROMETHEUS_RULES="${BUILD:-build}/prometheus-no-rules.yml"
            echo "groups: []" > "$PROMETHEUS_RULES"
            echo "stack: scripts/prometheus/rules.yml is missing: Prometheus runs with no alerting or recording rules"
        fi
    fi
    [ -f "$PROMETHEUS_RULES" ] || { echo "stack: PROMETHEUS_RULES=$PROMETHEUS_RULES: no such file" >&2; exit 1; }
    # Swarm's configs cannot change: a new checksum of the files, new configs
    CONFIG_SUM="$(cat scripts/jaeger/config.yaml scripts/prometheus/stack.yml "$PROMETHEUS_RULES" | sha256sum | cut -c1-12)"
    export CONFIG_SUM STACK_NAME
    docker-compose -f docker-compose.yaml build order payment shipment
    docker build -q -t resilience-gateway:1 -f scripts/docker/gateway.Dockerfile scripts/docker >/dev/null
    # Swarm's virtual IPs need the kernel's IPVS; without it, DNS round robin.
    if [ -z "${ENDPOINT_MODE:-}" ]; then
        if [ -e /proc/net/ip_vs ] || modprobe -q ip_vs 2>/dev/null; then
            export ENDPOINT_MODE=vip
        else
            export ENDPOINT_MODE=dnsrr
            echo "stack: no IPVS in this kernel: services reached by DNS round robin (ENDPOINT_MODE=dnsrr)"
        fi
    fi
    # shellcheck disable=SC2046
    docker stack deploy --resolve-image never $(stack_files) "$STACK_NAME"
    wait_replicas
    echo "stack: jaeger http://127.0.0.1:${JAEGER_PORT:-16686}/ (traces: /api/traces/<id>)," \
         "prometheus http://127.0.0.1:${PROMETHEUS_PORT:-9090}/ (rules: $PROMETHEUS_RULES)"
}

down() {
    if docker stack ls --format '{{.Name}}' 2>/dev/null | grep -qx "$STACK_NAME"; then
        docker stack rm "$STACK_NAME"
        local deadline=$((SECONDS + 120))
        while [ -n "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK_NAME")" ] ||
              [ -n "$(docker network ls -q --filter "label=com.docker.stack.namespace=$STACK_NAME")" ]; do
            [ $SECONDS -ge $deadline ] && { echo "stack: $STACK_NAME still has containers or networks" >&2; break; }
            sleep 1
        done
        echo "stack: $STACK_NAME removed"
    fi
    if [ -f "$MARK" ]; then
        docker swarm leave --force >/dev/null && rm -f "$MARK"
        echo "stack: left the Swarm stack-up created"
    fi
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
