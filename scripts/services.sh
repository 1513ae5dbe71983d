#!/usr/bin/env bash
# Best effort: make sure the local services some tests use are up (PostgreSQL :5432, Mosquitto :1883), on
# machines that have them installed. Tests that need a service still skip, saying why, when it is absent.
# MLflow servers, Ray clusters and gRPC servers are started by the tests themselves, on 127.0.0.1.
set -u
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! up 5432 && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if ! up 1883 && command -v mosquitto >/dev/null; then
  mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
fi
for port in 5432 1883; do up "$port" && echo "service on 127.0.0.1:$port is up" || echo "no service on 127.0.0.1:$port (its tests will skip)"; done
exit 0
