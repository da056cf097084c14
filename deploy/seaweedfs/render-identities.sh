#!/bin/sh
# Prints deploy/seaweedfs/identities.json with the keys of deploy/.env filled in: the
# identities file `weed server -s3.config` reads (one identity per role, its rights as
# SeaweedFS actions). check-env.sh has made sure every key is [A-Za-z0-9_-], so none can
# break out of its JSON string.
set -eu
template="${1:-/deploy/seaweedfs/identities.json}"
for name in S3_ADMIN_ACCESS_KEY S3_ADMIN_SECRET_KEY S3_WORKER_ACCESS_KEY S3_WORKER_SECRET_KEY \
    S3_APPROVER_ACCESS_KEY S3_APPROVER_SECRET_KEY; do
    eval "value=\${$name:?$name is not set}"
    case "$value" in
        *[!A-Za-z0-9_-]*) echo "render-identities: $name holds characters other than A-Z a-z 0-9 _ -" >&2; exit 1 ;;
    esac
done
sed -e "s/\${S3_ADMIN_ACCESS_KEY}/$S3_ADMIN_ACCESS_KEY/g" \
    -e "s/\${S3_ADMIN_SECRET_KEY}/$S3_ADMIN_SECRET_KEY/g" \
    -e "s/\${S3_WORKER_ACCESS_KEY}/$S3_WORKER_ACCESS_KEY/g" \
    -e "s/\${S3_WORKER_SECRET_KEY}/$S3_WORKER_SECRET_KEY/g" \
    -e "s/\${S3_APPROVER_ACCESS_KEY}/$S3_APPROVER_ACCESS_KEY/g" \
    -e "s/\${S3_APPROVER_SECRET_KEY}/$S3_APPROVER_SECRET_KEY/g" \
    "$template"
