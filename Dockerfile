# Dockerfile -- one image per service (order, payment, shipment), picked by the SERVICE build argument.
#
#   docker build --build-arg SERVICE=payment -t payment:breaker .
#
# Stage "build" compiles the three services with the project's Makefile on
# debian:bookworm-slim; it does not depend on SERVICE, so the three images share
# it from the build cache. Stage "runtime" holds only the shared libraries the
# binary links against and the one binary, runs as an unprivileged user, and
# execs the binary directly so SIGTERM reaches it (it stops within a second).
# BASE may name another Debian 12 image (one that already holds these packages,
# for a machine whose containers cannot reach a Debian mirror).
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
LABEL org.resilience-suite.stage=build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        gcc libc6-dev make pkg-config \
        libcivetweb-dev libmongoc-dev libbson-dev libcjson-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the services are built from, so edits elsewhere keep the cache.
COPY Makefile services.tsv ./
COPY mk/ mk/
COPY common/ common/
COPY order/main.c order/
COPY payment/main.c payment/
COPY shipment/main.c shipment/
RUN make -j2 services-rel

FROM ${BASE} AS runtime
LABEL org.resilience-suite.stage=runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libcivetweb1 libmongoc-1.0-0 libbson-1.0-0 libcjson1 libcurl4 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin svc
ARG SERVICE=order
COPY --from=build /src/build/bin/${SERVICE} /usr/local/bin/service
USER svc
EXPOSE 3000
ENV PORT=3000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 CMD ["/usr/local/bin/service", "--healthcheck"]
ENTRYPOINT ["/usr/local/bin/service"]
