# gateway.Dockerfile -- the stack's edge: socat forwarding host ports to the services' names inside the overlay network.
#
#   docker build -t resilience-gateway:1 -f scripts/docker/gateway.Dockerfile scripts/docker
#
# GATEWAY_ROUTES="3000:order:3000 3001:payment:3000 ..." : one socat per
# route, listening on the first port and opening a new connection to
# host:port for every client connection (the name is resolved again each
# time, so with endpoint_mode dnsrr connections spread over the replicas).
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends socat \
 && rm -rf /var/lib/apt/lists/*
COPY gateway.sh /usr/local/bin/gateway
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/gateway"]
