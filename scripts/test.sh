#!/usr/bin/env bash
# `make test`: install the tools tests run, test the service scripts, start
# private services, vet, then
# `go test -race ./...` with the services' addresses in the environment.
# Exits with go test's status (or the first failure before it).
#
# GOTESTFLAGS adds flags to go test (e.g. GOTESTFLAGS=-v, or -run X).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=lib.sh
. scripts/lib.sh

command -v go >/dev/null || die "go is not on PATH (expected at /usr/local/go/bin)"

# Tools that tests run besides the services (those come from services.sh):
# node for the JavaScript unit tests, Debian's Chromium and ChromeDriver for
# the browser test, systemd-analyze for the unit-file test, openssl for the
# shell way of minting tokens (scripts/mint-token.sh).
tools=()
command -v openssl >/dev/null || tools+=(openssl)
command -v node >/dev/null || tools+=(nodejs)
{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || tools+=(chromium chromium-driver)
command -v systemd-analyze >/dev/null || tools+=(systemd)
apt_install "${tools[@]}"

scripts/services_test.sh || die "the service scripts' own test failed"

SVC_DIR=$(mktemp -d "${TMPDIR:-/tmp}/gopush-test.XXXXXX")
cleanup() {
	scripts/services.sh stop "$SVC_DIR" || true
	rm -rf "$SVC_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

scripts/services.sh start "$SVC_DIR" || die "could not start the test services"
# shellcheck disable=SC1091
. "$SVC_DIR/env"
log "services: ZooKeeper $GOPUSH_TEST_ZK, Redis $GOPUSH_TEST_REDIS, MariaDB $GOPUSH_TEST_MYSQL"

go vet ./... || die "go vet failed"

# shellcheck disable=SC2086
go test -race -timeout 20m ${GOTESTFLAGS:-} ./...
