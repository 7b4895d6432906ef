#!/usr/bin/env bash
# MySQL users of the compose stack (docker-compose.yml mounts this file into
# /docker-entrypoint-initdb.d/, so the mysql:8.4 image runs it as root on the first start of an empty
# `mysql-data` volume, after it has set the root password). One user per service database, each allowed
# only its own database (which the service creates at start), and Debezium's user for the binlog. Every
# password is the secret file /run/secrets/mysql_<user>_password (scripts/compose-secrets creates them;
# the services read theirs through <PREFIX>_DATABASE_PASSWORD_FILE, Connect through its `dir` config
# provider). No password is written in this file, printed or passed on a command line.
#
# Idempotent, and the way to apply a new password or a new user to an existing volume (the image runs
# it only on an empty one):
#   docker compose up -d --force-recreate mysql          # the new secret files mounted
#   docker compose exec mysql bash /docker-entrypoint-initdb.d/01-users.sh
# then recreate the services whose password changed. e2e/tests/it/deploy_config.rs checks that every
# database URL of docker-compose.yml names a user of the table below.

# The image sources a mounted script that is not executable; run it as its own process either way, so
# its shell options never leak into the image's entrypoint.
if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  bash "${BASH_SOURCE[0]}"
  return
fi
set -euo pipefail

secrets_dir="${SECRETS_DIR:-/run/secrets}"

# user          database   (one line each; `debezium` below is the CDC connector's, on every database)
USERS="
identity        identity
product         product
orchestrator    orchestrator
payment         payment
bank            bank
bank002         bank_002
bank003         bank_003
"

password() { # password <user>: the secret file's content, checked to be safe inside SQL quotes
  local file="$secrets_dir/mysql_$1_password" value
  if [ ! -r "$file" ]; then
    echo "mysql init: $file is missing or unreadable (scripts/compose-secrets creates it)" >&2
    exit 1
  fi
  value="$(cat "$file")"
  if ! [[ "$value" =~ ^[A-Za-z0-9._~-]{16,}$ ]]; then
    echo "mysql init: mysql_$1_password must be at least 16 characters of A-Z a-z 0-9 . _ ~ -" >&2
    exit 1
  fi
  printf '%s' "$value"
}

sql() {
  # Statements on stdin, as root over the local socket; the root password travels in a file
  # descriptor, never on the command line.
  mysql --defaults-extra-file=<(printf '[client]\nuser=root\npassword="%s"\n' "$MYSQL_ROOT_PASSWORD") \
    --protocol=socket -hlocalhost ${SOCKET:+--socket="$SOCKET"} --database=mysql
}

# Every secret is checked before any statement runs: a missing one changes nothing.
while read -r user _; do
  [ -z "$user" ] || password "$user" >/dev/null
done <<<"$USERS
debezium"

{
  # User management is not data: keep it out of the binlog (and so out of Debezium's way).
  echo "SET @@SESSION.SQL_LOG_BIN = 0;"
  while read -r user database; do
    [ -n "$user" ] || continue
    pw="$(password "$user")"
    echo "CREATE USER IF NOT EXISTS '$user'@'%' IDENTIFIED BY '$pw';"
    echo "ALTER USER '$user'@'%' IDENTIFIED BY '$pw';"
    # `_` is a wildcard in a grant's database name: escaped, the grant covers that database only.
    echo "GRANT ALL PRIVILEGES ON \`${database//_/\\_}\`.* TO '$user'@'%';"
    echo "mysql init: user $user, database $database" >&2
  done <<<"$USERS"
  pw="$(password debezium)"
  echo "CREATE USER IF NOT EXISTS 'debezium'@'%' IDENTIFIED BY '$pw';"
  echo "ALTER USER 'debezium'@'%' IDENTIFIED BY '$pw';"
  echo "GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT, LOCK TABLES ON *.* TO 'debezium'@'%';"
  echo "mysql init: user debezium (CDC: binlog and snapshot reads)" >&2
} | sql
echo "mysql init: done" >&2
