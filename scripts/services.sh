#!/usr/bin/env bash
# Checks that RabbitMQ and PostgreSQL answer, starting the ones that do not. Never stops or
# reconfigures a running service: tests make vhosts and databases of their own.
set -euo pipefail

answers() { timeout 2 bash -c ">/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

wait_for() {
  local name=$1 port=$2
  for _ in $(seq 1 60); do
    answers "$port" && return 0
    sleep 1
  done
  echo "services: $name does not answer on 127.0.0.1:$port" >&2
  return 1
}

if ! answers 5672; then
  echo "services: starting RabbitMQ"
  rabbitmq-server -detached
  wait_for RabbitMQ 5672
fi
if ! answers 5432; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  wait_for PostgreSQL 5432
fi
