#!/usr/bin/env bash
# The `kafka-init` one-shot of docker-compose.yml (image apache/kafka:4.1.0, run as the super user
# `admin` over the BROKER listener, SASL/PLAIN):
#   1. gives every principal of acls.conf its SCRAM-SHA-512 credential, read from the secret
#      /run/secrets/kafka_<principal>_password (setting it again is how a password is rotated);
#   2. creates the CDC topic (1 partition, compacted), which the product service's indexer needs before
#      Debezium has written anything;
#   3. gives an existing payment.commands its 6-hour retention (the services create it with it);
#   4. adds the ACLs listed in acls.conf (adding an ACL that exists is a no-op).
# Idempotent: every `docker compose up` runs it again. ACLs removed from acls.conf are NOT revoked
# here (docs/kafka-security.md says how). Passwords never reach stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
acls="${ACLS_FILE:-$here/acls.conf}"
bootstrap="${ADMIN_BOOTSTRAP_SERVER:-kafka:9094}"
secrets_dir="${SECRETS_DIR:-/run/secrets}"
cdc_topic="${CDC_TOPIC:-shop.product.products}"
cdc_replicas="${CDC_TOPIC_REPLICATION_FACTOR:-1}"
bin="${KAFKA_BIN:-/opt/kafka/bin}"

secret() {
  local file="$secrets_dir/$1" value
  if [ ! -r "$file" ]; then
    echo "kafka-init: $file is missing or unreadable (scripts/compose-secrets creates it)" >&2
    exit 1
  fi
  value="$(cat "$file")"
  # Written inside JAAS quotes and kafka-configs' SCRAM-SHA-512=[...] syntax: a safe alphabet only.
  # ... and byte for byte the file: Connect's DirectoryConfigProvider would keep a trailing newline.
  if ! [[ "$value" =~ ^[A-Za-z0-9._~-]{16,}$ ]] || [ "$(wc -c <"$file")" -ne "${#value}" ]; then
    echo "kafka-init: $1 must be at least 16 characters of A-Z a-z 0-9 . _ ~ - (and no newline)" >&2
    exit 1
  fi
  printf '%s' "$value"
}

admin_config="$(mktemp)"
trap 'rm -f "$admin_config"' EXIT
chmod 600 "$admin_config"
admin_password="$(secret kafka_admin_password)"
cat > "$admin_config" <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$admin_password";
PROPS
admin=(--bootstrap-server "$bootstrap" --command-config "$admin_config")

# The lines of acls.conf without comments and blank lines.
rules() { sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$acls"; }

echo "kafka-init: waiting for $bootstrap"
for attempt in $(seq 1 60); do
  if "$bin/kafka-topics.sh" "${admin[@]}" --list >/dev/null 2>&1; then break; fi
  if [ "$attempt" = 60 ]; then echo "kafka-init: $bootstrap did not answer" >&2; exit 1; fi
  sleep 2
done

for principal in $(rules | awk '{print $1}' | sort -u); do
  password="$(secret "kafka_${principal}_password")"
  echo "kafka-init: SCRAM-SHA-512 credential of $principal"
  "$bin/kafka-configs.sh" "${admin[@]}" --alter --entity-type users --entity-name "$principal" \
    --add-config "SCRAM-SHA-512=[iterations=8192,password=$password]" >/dev/null
done

# Compacted: the latest change of every product stays however old, so a reindex from the start of
# the topic (product/src/search) sees every product; deletes are tombstones, compacted away later.
echo "kafka-init: topic $cdc_topic (1 partition: Debezium's order of a table is the topic's order; compacted; $cdc_replicas replicas)"
"$bin/kafka-topics.sh" "${admin[@]}" --create --if-not-exists --topic "$cdc_topic" --partitions 1 \
  --replication-factor "$cdc_replicas" --config cleanup.policy=compact >/dev/null
# An existing topic (created before it was compacted) is switched over.
"$bin/kafka-configs.sh" "${admin[@]}" --alter --entity-type topics --entity-name "$cdc_topic" \
  --add-config cleanup.policy=compact >/dev/null

# payment.commands: an order's first charge command carries the card's sealed CVC, so records are
# deleted after 6 hours, with hourly segments (none outlives 7 hours), not the default 7 days
# (messaging/src/topics.rs: PAYMENT_COMMANDS_RETENTION_MS; docs/saga.md). The services create the
# topic with these settings; one created before them is switched over here.
payment_commands="${TOPIC_PREFIX:-}payment.commands"
payment_commands_settings="cleanup.policy=delete,retention.ms=21600000,segment.ms=3600000"
if "$bin/kafka-topics.sh" "${admin[@]}" --describe --topic "$payment_commands" >/dev/null 2>&1; then
  echo "kafka-init: topic $payment_commands keeps records 6 hours"
  "$bin/kafka-configs.sh" "${admin[@]}" --alter --entity-type topics --entity-name "$payment_commands" \
    --add-config "$payment_commands_settings" >/dev/null
fi

rules | while read -r principal resource pattern name operations extra; do
  if [ -n "${extra:-}" ] || [ -z "${operations:-}" ]; then
    echo "kafka-init: malformed line in $acls: $principal $resource $pattern $name $operations $extra" >&2
    exit 1
  fi
  case "$resource" in
    topic) target=(--topic "$name") ;;
    group) target=(--group "$name") ;;
    cluster) target=(--cluster) ;;
    *) echo "kafka-init: unknown resource type $resource in $acls" >&2; exit 1 ;;
  esac
  ops=()
  IFS=',' read -r -a list <<< "$operations"
  for op in "${list[@]}"; do ops+=(--operation "$op"); done
  echo "kafka-init: allow User:$principal $operations on $resource $name ($pattern)"
  "$bin/kafka-acls.sh" "${admin[@]}" --add --allow-principal "User:$principal" "${ops[@]}" \
    "${target[@]}" --resource-pattern-type "$pattern" >/dev/null
done

echo "kafka-init: done"
