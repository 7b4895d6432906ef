#!/usr/bin/env bash
# Entrypoint of the compose Kafka broker(s) (apache/kafka:4.1.0): turns the admin password secret
# into the broker's SASL settings, then runs the image's own start script (/etc/kafka/docker/run),
# which writes every KAFKA_* variable into server.properties, formats the storage once and starts
# the broker. docs/kafka-security.md describes the listeners.
#
#   CLIENT      :9092  SASL_PLAINTEXT, SCRAM-SHA-512 — the services and Connect (credentials created
#                      by the kafka-init one-shot, deploy/kafka/init.sh)
#   BROKER      :9094  SASL_PLAINTEXT, PLAIN — inter-broker traffic and the `admin` principal
#   CONTROLLER  :9093  SASL_PLAINTEXT, PLAIN — KRaft (SCRAM cannot authenticate controllers: their
#                      credentials would live in the metadata the controllers serve)
#
# `admin` is the super user; its password (secret kafka_admin_password) is static JAAS
# configuration, so changing it means restarting the broker(s).
set -euo pipefail

secrets_dir="${SECRETS_DIR:-/run/secrets}"
file="$secrets_dir/kafka_admin_password"
if [ ! -r "$file" ]; then
  echo "kafka: $file is missing or unreadable (scripts/compose-secrets creates it; docs/kafka-security.md)" >&2
  exit 1
fi
admin_password="$(cat "$file")"
# The password is written inside JAAS quotes and kafka-configs' [..] syntax: a safe alphabet only.
if ! [[ "$admin_password" =~ ^[A-Za-z0-9._~-]{16,}$ ]] || [ "$(wc -c <"$file")" -ne "${#admin_password}" ]; then
  echo "kafka: kafka_admin_password must be at least 16 characters of A-Z a-z 0-9 . _ ~ - (and no newline)" >&2
  exit 1
fi

plain="org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" password=\"$admin_password\" user_admin=\"$admin_password\";"
# listener.name.<listener>.<mechanism>.sasl.jaas.config (the image maps ___ to '-' and _ to '.').
export KAFKA_LISTENER_NAME_BROKER_PLAIN_SASL_JAAS_CONFIG="$plain"
export KAFKA_LISTENER_NAME_CONTROLLER_PLAIN_SASL_JAAS_CONFIG="$plain"
# SCRAM users are looked up in the cluster metadata; the login module takes no options.
export KAFKA_LISTENER_NAME_CLIENT_SCRAM___SHA___512_SASL_JAAS_CONFIG="org.apache.kafka.common.security.scram.ScramLoginModule required;"

# Client settings for the healthcheck (and for an operator's `docker compose exec kafka ...`).
umask 077
cat > /opt/kafka/config/admin-client.properties <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$admin_password";
PROPS
umask 022

exec /etc/kafka/docker/run
