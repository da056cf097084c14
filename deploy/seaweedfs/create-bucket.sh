#!/bin/sh
# One shot: the registry's bucket, made through the cluster's own shell (no key needed
# inside the compose network), left as it is when it exists; exits 0 once it is listed.
set -eu
bucket="${BUCKET:-softmax-models}"
master="${MASTER:-seaweedfs:9333}"
filer="${FILER:-seaweedfs:8888}"
shell() { echo "$1" | weed shell -master="$master" -filer="$filer"; }
listed() { shell s3.bucket.list 2>/dev/null | grep -Eq "^[[:space:]]*${bucket}([[:space:]]|\$)"; }
listed || shell "s3.bucket.create -name ${bucket}"
listed
echo "bucket ${bucket} ready"
