#!/usr/bin/env bash
# Installs the Debian packages exsync needs (ODBC driver manager, psqlODBC, a load generator),
# only when missing, so a fresh machine and CI need nothing done by hand.
set -euo pipefail
# prometheus ships promtool, which unit-tests the alert rules in k8s/ (tests/test_alerts.py).
wanted=(unixodbc unixodbc-dev odbc-postgresql wrk prometheus)
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
((${#missing[@]})) || exit 0
echo "system-deps: installing ${missing[*]}"
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null
$sudo apt-get install -y -q "${missing[@]}" >/dev/null
