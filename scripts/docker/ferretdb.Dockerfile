# ferretdb.Dockerfile -- a MongoDB-compatible database image with no registry: the static FerretDB binary on scratch.
# Built by scripts/docker/base-images.sh from a context holding ./ferretdb (scripts/ferretdb.sh build) and an empty ./data/db.
FROM scratch
COPY ferretdb /ferretdb
COPY data /data
VOLUME /data/db
EXPOSE 27017
HEALTHCHECK --interval=2s --timeout=3s --retries=30 CMD ["/ferretdb", "--healthcheck", "--listen-addr=127.0.0.1:27017"]
ENTRYPOINT ["/ferretdb", "--listen-addr=0.0.0.0:27017", "--sqlite-url=file:/data/db/"]
