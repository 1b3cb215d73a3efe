#!/usr/bin/env bash
# Prints a RabbitMQ password hash for definitions.json ("password_hash", hashing_algorithm
# rabbit_password_hashing_sha256, the broker's default): base64(salt ++ sha256(salt ++ utf8(password)))
# with a random 4-byte salt. RabbitMQ 3.11+ has `rabbitmqctl hash_password`; Debian 12's 3.10 does
# not, hence this script. The password is read from stdin so it stays out of `ps` and shell history:
#   printf '%s' 'n3w-Secret' | ops/rabbitmq/hash-password.sh
set -euo pipefail

password=$(cat)
if [ -z "$password" ]; then
  echo "hash-password.sh: empty password on stdin" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -c 4 /dev/urandom > "$tmp/salt"
{ cat "$tmp/salt"; printf '%s' "$password"; } | openssl dgst -sha256 -binary > "$tmp/digest"
cat "$tmp/salt" "$tmp/digest" | base64 -w0
echo
