# prometheus.Dockerfile -- Prometheus with no registry: Debian 12's package on debian:bookworm-slim.
# Built by scripts/docker/base-images.sh (resilience-prometheus:2.42).
#
# In place of the official prom/prometheus image through PROMETHEUS_IMAGE:
# the same entrypoint arguments work (--config.file, --storage.tsdb.path), it
# runs as nobody with its data in /prometheus, as the official image does.
# Debian's Prometheus (2.42) serves its classic web UI (/ leads to /classic/graph).
ARG BASE=debian:bookworm-slim
FROM ${BASE}
# policy-rc.d: the package's scripts must not start the server during the build
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d \
 # the classic UI reads one file of moment-timezone; its 212 MB of sources and data are left out
 && rm -rf /usr/share/javascript/moment-timezone/data \
 && mkdir -p /prometheus && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
