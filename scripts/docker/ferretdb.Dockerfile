# ferretdb.Dockerfile -- a MongoDB-compatible database image with no registry: the static FerretDB binary on scratch.
# Built by scripts/docker/base-images.sh from a context holding ./ferretdb (scripts/ferretdb.sh build) and an empty ./data/db.
FROM scratch
# /usr/local/bin/mongosh is the same binary: under that name it is the ping
# healthcheck, so docker-stack.yaml's `mongosh --eval` check (written for the
# mongo image) works here unchanged (a copy: COPY keeps no links).
COPY ferretdb /ferretdb
COPY ferretdb /usr/local/bin/mongosh
COPY data /data
ENV PATH=/usr/local/bin:/usr/bin:/bin
VOLUME /data/db
EXPOSE 27017
# a ping, not a TCP connect: a server that is alive but answers nothing is unhealthy (Swarm replaces it)
HEALTHCHECK --interval=2s --timeout=3s --start-period=30s --retries=3 CMD ["/ferretdb", "--healthcheck", "--listen-addr=127.0.0.1:27017"]
ENTRYPOINT ["/ferretdb", "--listen-addr=0.0.0.0:27017", "--sqlite-url=file:/data/db/"]
