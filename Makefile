# ringlb's Docker deployment and test entry points. Images are built locally from static
# binaries (no registry is needed): see compose/build-images.sh.

DOCKER ?= docker
# The compose v2 plugin when present, else the standalone docker-compose (v1.29 reads our file).
COMPOSE ?= $(shell if $(DOCKER) compose version >/dev/null 2>&1; then echo "$(DOCKER) compose"; \
	elif command -v docker-compose >/dev/null 2>&1; then echo docker-compose; fi)
PROJECT ?= ringlb
DC = $(COMPOSE) --project-name $(PROJECT) --file compose/docker-compose.yml
# Label value of the replica containers that the compose deployment's ringlb starts.
INSTANCE = compose
NETWORK = net1
# Host ports (loopback only) of the data and control ports; the compose file reads them.
HOST_DATA_PORT ?= 5000
HOST_CONTROL_PORT ?= 5001
export HOST_DATA_PORT HOST_CONTROL_PORT
# How long `make up` waits for ringlb to report a ready replica.
UP_WAIT_SECONDS ?= 60

.PHONY: images up down logs ps test bench bench-quick

## images: build ringlb:latest and ringlb-replica:latest (FROM scratch, static binaries)
images:
	compose/build-images.sh

## up: start ringlb on net1 with 3 replica containers; data on 127.0.0.1:5000, control on :5001
##     (HOST_DATA_PORT / HOST_CONTROL_PORT move them)
up: compose-check
	@$(DOCKER) image inspect ringlb:latest ringlb-replica:latest >/dev/null 2>&1 || $(MAKE) images
	$(DC) up -d
	@printf 'waiting for a ready replica'; \
	for i in $$(seq $(UP_WAIT_SECONDS)); do \
	  if curl -fsS -o /dev/null http://127.0.0.1:$(HOST_CONTROL_PORT)/readyz 2>/dev/null; then \
	    echo; echo "ringlb is up: curl localhost:$(HOST_DATA_PORT)/home"; exit 0; fi; \
	  printf .; sleep 1; \
	done; \
	echo; echo "ringlb is not ready after $(UP_WAIT_SECONDS)s; see: $(DC) logs" >&2; exit 1

## down: remove ringlb, every replica container it started (label ringlb.instance=compose), net1
down: compose-check
	-$(DC) stop --timeout 30
	@ids=$$($(DOCKER) ps -aq --filter label=ringlb.instance=$(INSTANCE)); \
	if [ -n "$$ids" ]; then echo "removing replica containers"; $(DOCKER) rm -f $$ids >/dev/null; fi
	$(DC) down --remove-orphans
	@if $(DOCKER) network inspect $(NETWORK) >/dev/null 2>&1; then $(DOCKER) network rm $(NETWORK); fi

## logs: follow ringlb's log
logs: compose-check
	$(DC) logs --follow

## ps: the deployment's containers, replicas included
ps:
	@$(DOCKER) ps -a --filter label=com.docker.compose.project=$(PROJECT) \
	  --format 'table {{.Names}}\t{{.Image}}\t{{.Status}}\t{{.Ports}}'
	@$(DOCKER) ps -a --filter label=ringlb.instance=$(INSTANCE) \
	  --format 'table {{.Names}}\t{{.Image}}\t{{.Status}}\t{{.Label "ringlb.id"}}'

## test: the whole workspace's tests (those needing Docker skip when no engine runs)
test:
	cargo test --workspace

.PHONY: compose-check
compose-check:
	@test -n "$(COMPOSE)" || { echo "neither \`docker compose\` nor docker-compose found" >&2; exit 1; }

## bench: ringlb beside HAProxy and nginx on loopback, every workload, 3 interleaved repetitions,
##        plus memory, ring and control figures (34–41 min); rewrites docs/benchmarks.md and
##        docs/results/bench-* (bench/run.sh; REPS, DUR, TARGETS… override)
bench:
	bench/run.sh

## bench-quick: the benchmark at a tiny size (1 s, one workload, two targets); touches no docs
bench-quick:
	bench/run.sh --quick
