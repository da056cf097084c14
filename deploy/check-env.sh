#!/bin/sh
# The first service of the deployment: refuses to start it while a secret of deploy/.env
# is empty, still deploy/.env.example's (public) value, or not 16-128 of A-Z a-z 0-9 _ -.
# The secrets are the example's variables named *_KEY, *SECRET*, *PASSWORD*; each is
# passed to this service by docker-compose.yml.
#
#   sh deploy/check-env.sh [EXAMPLE_FILE]     (reads the values from the environment)
set -eu
example="${1:-/deploy/.env.example}"
failed=0
for name in $(sed -n -E 's/^([A-Z0-9_]*(_KEY|SECRET|PASSWORD)[A-Z0-9_]*)=.*/\1/p' "$example"); do
    eval "value=\${$name-}"
    placeholder=$(sed -n "s/^$name=//p" "$example")
    if [ -z "$value" ]; then
        echo "deploy/.env: $name is empty; set it, e.g. to \$(openssl rand -hex 24)" >&2
        failed=1
    elif [ "$value" = "$placeholder" ]; then
        echo "deploy/.env: $name is still the value in deploy/.env.example, which anyone can read; set your own, e.g. \$(openssl rand -hex 24)" >&2
        failed=1
    elif ! printf '%s' "$value" | grep -Eq '^[A-Za-z0-9_-]{16,128}$'; then
        echo "deploy/.env: $name must be 16-128 characters of A-Z a-z 0-9 _ - (e.g. \$(openssl rand -hex 24))" >&2
        failed=1
    fi
done
[ "$failed" -eq 0 ] || exit 1
echo "deploy/.env: every secret is set, and none is the example's"
