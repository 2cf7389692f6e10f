#!/bin/sh
# Make the compose stack's credentials: deploy/compose/.env (read by `docker compose` for the
# ${...} in compose.yaml) and deploy/compose/secrets/ (mounted as compose secrets). Both are ignored
# by git and made readable by you alone. Existing values are kept (a MongoDB volume made with one
# password needs that password back); delete a line or file to get a new one.
#   sh deploy/compose/make-secrets.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
umask 077
mkdir -p "$here/secrets"
chmod 700 "$here/secrets"
env_file="$here/.env"
touch "$env_file"
chmod 600 "$env_file"

random_hex() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }

ensure_var() {  # NAME: add NAME=<random> to .env unless it is there
  grep -q "^$1=" "$env_file" || printf '%s=%s\n' "$1" "$(random_hex)" >> "$env_file"
}

for name in NATS_PASSWORD NATS_INTEGRATION_PASSWORD MONGO_PASSWORD MODELHUB_ADMIN_TOKEN RAY_AUTH_TOKEN GRAFANA_ADMIN_PASSWORD; do
  ensure_var "$name"
done
# the services' MongoDB password, also as a file for the mongo container's health check (which
# creates the user), and MongoDB's user administrator's, which only that check needs
grep '^MONGO_PASSWORD=' "$env_file" | cut -d= -f2- | tr -d '\n' > "$here/secrets/mongo-password"
[ -s "$here/secrets/mongo-admin-password" ] || random_hex > "$here/secrets/mongo-admin-password"
# the replica set's internal key (members authenticate to each other with it)
[ -s "$here/secrets/mongo-keyfile" ] || { od -An -N756 -tx1 /dev/urandom | tr -d ' \n' | head -c 1008; } > "$here/secrets/mongo-keyfile"
# compose mounts these files into containers that run as other users: readable inside, while the
# 0700 folder keeps them from other users of this machine
chmod 644 "$here/secrets/mongo-password" "$here/secrets/mongo-admin-password" "$here/secrets/mongo-keyfile"
echo "wrote $env_file and $here/secrets/ (keep them out of git; they are in .gitignore)"
