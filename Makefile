# gopush. `make run` starts a whole cluster on this machine; `make test` runs
# every test against private services. Both install what is missing (Debian).

GO ?= go
export PATH := $(PATH):/usr/local/go/bin

.PHONY: all build run stop test vet bench services-test datacenter datacenter-test clean

all: build

## build: compile every command under cmd/ into bin/ (comet, web, message, ...)
build:
	@mkdir -p bin
	$(GO) build -o bin/ ./cmd/...

## run: private ZooKeeper + Redis, then message, comet and web; Ctrl-C stops all
run: build
	scripts/run.sh start

## stop: stop a `make run` left running in the background
stop:
	scripts/run.sh stop

## test: test the service scripts, start private services, go vet, go test -race
test:
	scripts/test.sh

## vet: go vet ./...
vet:
	$(GO) vet ./...

## services-test: only the test of scripts/services.sh
services-test:
	scripts/services_test.sh

## datacenter-test: only the tests that run a cluster in network namespaces
## (needs root; docs/reliability.md)
datacenter-test:
	$(GO) test -count=1 -v -run 'Datacenter' ./internal/testenv ./e2e

## datacenter: start a cluster in network namespaces to explore by hand;
## Ctrl-C removes it (needs root)
datacenter:
	$(GO) test -count=1 -v -timeout 0 -run 'TestDatacenterExplore' ./e2e -args -dc.explore

## bench: the standard load scenarios on a private cluster (scripts/bench.sh)
bench:
	scripts/bench.sh

## clean: remove build output and a stopped run's files
clean: stop
	rm -rf bin run
