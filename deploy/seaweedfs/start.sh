#!/bin/sh
# The seaweedfs service: master, volume server, filer and S3 gateway in one process, its
# keys from the identities file rendered from deploy/.env (readable by this container only).
#
# Every port of this process answers on the container's loopback only. The master, volume
# server and filer take requests without a key, and the S3 gateway's gRPC port takes a new
# identities file without one: on the compose network any container could write the
# bucket, move an alias or rewrite the keys through them. The network reaches the S3
# gateway's HTTP port alone, which checks every request's key, through the `s3` service
# (a proxy in this container's network namespace: port 8333 to 127.0.0.1:8334).
set -eu
umask 077
sh /deploy/seaweedfs/render-identities.sh > /tmp/identities.json
exec weed server \
    -dir=/data \
    -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.volumeSizeLimitMB=1024 -master.telemetry=false \
    -volume.max=0 \
    -filer \
    -s3 -s3.port=8334 -s3.config=/tmp/identities.json \
    -s3.autoCreateBucket=false \
    -s3.port.iceberg=0 -s3.port.lance=0
