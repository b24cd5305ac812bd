# podguard Makefile. `make help` lists the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

# Versions of the control plane the e2e tests and `make run` use. The binaries
# are built from these Go modules (hack/tools/go.mod) into ./bin, and rebuilt
# only when hack/tools/go.mod changes.
KUBE_VERSION := v1.36.3
BIN          := $(CURDIR)/bin
TOOLS_STAMP  := $(BIN)/.tools-$(KUBE_VERSION)-$(shell sha256sum hack/tools/go.mod | cut -c1-12)
KUBECTL      := $(BIN)/kubectl

# VERSION is what the binary reports: the git tag on a release, else
# git describe (v0.1.0-3-gabcdef0-dirty). The release these manifests install
# is the file VERSION (make set-version changes it).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
GOFLAGS_BUILD := -trimpath -ldflags "$(LDFLAGS)"
export CGO_ENABLED ?= 0

KUBE_LDFLAGS := -s -w -X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 \
	-X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(KUBE_VERSION))) \
	-X k8s.io/component-base/version.gitTreeState=clean

IMG ?= ghcr.io/podguard/podguard:$(VERSION)

# What make dist builds CLI binaries for; the image is linux/amd64 and
# linux/arm64 (the release workflow).
PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
DIST      := $(CURDIR)/dist

# E2E_FLAGS passes extra flags to the e2e run, e.g. E2E_FLAGS="-v -run TestMutate".
E2E_FLAGS ?=

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: fmt
fmt: ## Format the Go code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet, including the e2e build tag.
	go vet ./...
	go vet -tags e2e ./e2e/...

.PHONY: lint
lint: vet monitoring-lint ## Check formatting, run go vet, and validate the monitoring component.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: monitoring-lint
monitoring-lint: ## Validate deploy/components/monitoring: the alert rules (Prometheus' parsers), the dashboard (Grafana's JSON schema), and every metric they read.
	cd hack/monitoring && go vet ./... && go test -count=1 ./...

.PHONY: unit
unit: ## Run the unit tests.
	go test -count=1 ./...

.PHONY: e2e
e2e: build tools ## Run the e2e tests against a real kube-apiserver, etcd and kube-controller-manager.
	go test -tags e2e -count=1 -timeout 30m $(E2E_FLAGS) ./e2e/...

.PHONY: test
test: lint unit e2e ## Run every test: lint, unit and e2e.

.PHONY: soak
soak: build tools ## Run every adversarial e2e case against the budgets and print the table (make test runs a fast subset).
	PODGUARD_SOAK=1 go test -tags e2e -count=1 -timeout 30m -v -run '^TestAdversarialInputs$$' ./e2e/

.PHONY: bench
bench: ## Run the benchmarks and print their figures.
	go test -run '^$$' -bench . -benchmem ./...

# PERF_FLAGS passes flags to the perf harness, e.g. a quick run:
# PERF_FLAGS="-rounds 1 -duration 1s -create-duration 3s". `bin/perf -h` lists them.
PERF_FLAGS ?=

.PHONY: perf
perf: build tools ## Measure podguard against a null webhook, loopback and through kube-apiserver (issue 12), and the background audit starting on 100,000 Pods (issue 13); prints tables, writes .perf/results.json.
	go build -o $(BIN)/nullwebhook ./hack/nullwebhook
	go build -o $(BIN)/perf ./hack/perf
	$(BIN)/perf $(PERF_FLAGS)

##@ Build

.PHONY: build
build: ## Build bin/podguard.
	go build $(GOFLAGS_BUILD) -o $(BIN)/podguard ./cmd/podguard

.PHONY: run
run: build tools ## Run podguard on a local control plane (Ctrl-C stops everything).
	go build -o $(BIN)/devcluster ./hack/devcluster
	exec $(BIN)/devcluster

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t $(IMG) .

.PHONY: dist
dist: ## Build the CLI binaries of every platform and their SHA-256 checksums into dist/ (the release workflow runs this).
	rm -rf $(DIST)
	mkdir -p $(DIST)
	for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; ext=""; \
		if [ "$$os" = windows ]; then ext=.exe; fi; \
		GOOS=$$os GOARCH=$$arch go build $(GOFLAGS_BUILD) -o $(DIST)/podguard_$(VERSION)_$${os}_$${arch}$$ext ./cmd/podguard; \
	done
	cd $(DIST) && sha256sum podguard_* > checksums.txt

##@ Release

# The release scheme: V is vMAJOR.MINOR.PATCH, or vMAJOR.MINOR.PATCH-rc.N.
RELEASE_TAG_RE := ^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-rc\.(0|[1-9][0-9]*))?$$

.PHONY: set-version
set-version: ## Make V (V=v0.2.0) the release this tree installs: VERSION, deploy/base, the README, the chart, the goldens.
	@if ! [[ "$(V)" =~ $(RELEASE_TAG_RE) ]]; then echo "V must be vX.Y.Z or vX.Y.Z-rc.N, got '$(V)'"; exit 1; fi
	old=$$(cat VERSION); old_re=$${old//./\\.}; \
	echo "$(V)" > VERSION; \
	sed -i -E "s#(podguard:|\?ref=|newTag: |refs/tags/|cmd/podguard@|reports \`)$$old_re\b#\1$(V)#g" \
		deploy/base/deployment.yaml README.md $$(grep -rlE "ref=$$old_re\b" deploy/components || true); \
	v="$(V)"; sed -i -E "s#(charts/podguard --version )$${old_re#v}\b#\1$${v#v}#g" README.md; \
	if [ -f deploy/chart/podguard/Chart.yaml ]; then \
		v="$(V)"; sed -i -E "s#^appVersion: .*#appVersion: \"$(V)\"#; s#^version: .*#version: $${v#v}#" deploy/chart/podguard/Chart.yaml; \
	fi
	PODGUARD_UPDATE_GOLDEN=1 go test -count=1 -run Golden ./policies/ >/dev/null
	go test -count=1 . ./deploy/ ./policies/ ./cmd/podguard/
	@echo "now: git commit -am 'release $(V)' && git tag $(V) && git push origin HEAD $(V)"

##@ Tools

.PHONY: tools
tools: $(TOOLS_STAMP) ## Build etcd, kube-apiserver, kube-controller-manager and kubectl into bin/.

$(TOOLS_STAMP): hack/tools/go.mod hack/tools/go.sum
	@mkdir -p $(BIN)
	@echo "building etcd, kube-apiserver, kube-controller-manager and kubectl $(KUBE_VERSION) (about 5-10 minutes the first time)"
	cd hack/tools && go build -trimpath -ldflags "$(KUBE_LDFLAGS)" -o $(BIN)/etcd ./etcd
	cd hack/tools && go build -trimpath -ldflags "$(KUBE_LDFLAGS)" -o $(BIN)/kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
	cd hack/tools && go build -trimpath -ldflags "$(KUBE_LDFLAGS)" -o $(BIN)/kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
	cd hack/tools && go build -trimpath -ldflags "$(KUBE_LDFLAGS)" -o $(KUBECTL) k8s.io/kubernetes/cmd/kubectl
	rm -f $(BIN)/.tools-*
	touch $@

# kubectl is what the e2e test of YAML reading (e2e/yaml_parity_test.go)
# holds podguard check to; it comes from the same pinned modules.
.PHONY: kubectl
kubectl: tools ## Build the tools, kubectl among them.

.PHONY: clean
clean: ## Remove build output and the control-plane binaries.
	rm -rf $(BIN) .devcluster $(DIST)
