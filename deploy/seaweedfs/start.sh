#!/bin/sh
# The seaweedfs service: master, volume server, filer and S3 gateway in one process, its
# keys from the identities file rendered from deploy/.env (readable by this container only).
set -eu
umask 077
sh /deploy/seaweedfs/render-identities.sh > /tmp/identities.json
exec weed server \
    -dir=/data \
    -ip=seaweedfs -ip.bind=0.0.0.0 \
    -master.volumeSizeLimitMB=1024 -master.telemetry=false \
    -volume.max=0 \
    -filer \
    -s3 -s3.port=8333 -s3.config=/tmp/identities.json \
    -s3.autoCreateBucket=false \
    -s3.port.iceberg=0 -s3.port.lance=0
