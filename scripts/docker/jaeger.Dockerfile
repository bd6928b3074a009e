# jaeger.Dockerfile -- Jaeger v2 with no registry: the static binary scripts/jaeger.sh builds, on scratch.
# Built by scripts/docker/base-images.sh (resilience-jaeger:2.12.0) from a context holding ./jaeger.
#
# In place of the official jaegertracing/jaeger:2.12.0 (the same module
# version, v1.75.0) through JAEGER_IMAGE: same binary path, user and
# listening address, so docker-compose.yaml's and docker-stack.yaml's command
# (--config=/etc/jaeger/config.yaml) and mounts work on both. It differs in
# one thing: built from the module proxy, it serves Jaeger's placeholder page
# at / instead of the UI (the query API is the same).
FROM scratch
COPY jaeger /cmd/jaeger/jaeger-linux
ENV JAEGER_LISTEN_HOST=0.0.0.0
EXPOSE 4318 16686
USER 10001
ENTRYPOINT ["/cmd/jaeger/jaeger-linux"]
