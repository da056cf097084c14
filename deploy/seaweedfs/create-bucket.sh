#!/bin/sh
# One shot: the registry's bucket, made through the cluster's own shell, left as it is
# when it exists; exits 0 once it is listed. The master and filer answer on the seaweedfs
# container's loopback only (start.sh): this runs in that container's network namespace.
set -eu
bucket="${BUCKET:-softmax-models}"
master="${MASTER:-127.0.0.1:9333}"
filer="${FILER:-127.0.0.1:8888}"
shell() { echo "$1" | weed shell -master="$master" -filer="$filer"; }
listed() { shell s3.bucket.list 2>/dev/null | grep -Eq "^[[:space:]]*${bucket}([[:space:]]|\$)"; }
listed || shell "s3.bucket.create -name ${bucket}"
listed
echo "bucket ${bucket} ready"
