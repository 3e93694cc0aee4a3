# medallion: `make demo` runs the pipeline end to end, `make test` runs the test suite.
# Both set themselves up first; `make setup` is idempotent and quick when nothing changed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-stamp
CONF   ?= local
PYTEST_ARGS ?=
# Test processes (pytest-xdist), each with its own SparkSession: most of a test's time is spent
# waiting on triggers, brokers and subprocesses, so two share the two cores well. 0: one process.
TEST_WORKERS ?= 2

.PHONY: setup test demo bench lint clean python java jars mermaid kafka-up kafka-down

setup: python java $(STAMP) jars mermaid

# The Python the venv is made from: 3.11+, as pyproject.toml requires.
python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { \
	  echo "error: Python 3.11+ is required and was not found ($(PYTHON))."; \
	  echo "  Debian/Ubuntu: sudo apt-get install -y python3.11 python3.11-venv"; \
	  echo "  macOS:         brew install python@3.11"; \
	  echo "  or pass one:   make setup PYTHON=/path/to/python3.11"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "error: Python 3.11+ required, found: $$($(PYTHON) --version 2>&1) ($(PYTHON))"; \
	  echo "  pass a newer one: make setup PYTHON=/path/to/python3.11"; exit 1; }

# The java Spark launches: $JAVA_HOME's if set, else the one on PATH.
JAVA := $(if $(JAVA_HOME),$(JAVA_HOME)/bin/java,java)

java:
	@command -v $(JAVA) >/dev/null 2>&1 || { \
	  echo "error: Java 17+ is required by Spark 4 and was not found ($(JAVA))."; \
	  echo "  Debian/Ubuntu: sudo apt-get install -y openjdk-17-jdk-headless"; \
	  echo "  macOS:         brew install openjdk@17"; \
	  echo "  or set JAVA_HOME to a JDK 17+"; exit 1; }
	@# The banner is the first line that is not JAVA_TOOL_OPTIONS' "Picked up ..." notice.
	@banner=$$($(JAVA) -version 2>&1 | grep -v 'Picked up' | head -1); \
	  v=$$(echo "$$banner" | sed -E 's/.*"([0-9]+)(\.[^"]*)?".*/\1/'); \
	  [ "$$v" -ge 17 ] 2>/dev/null || { echo "error: Java 17+ required, found: $$banner"; exit 1; }

# Reinstall only when the dependency list changes. pip byte-compiles what it installs: where
# PYTHONDONTWRITEBYTECODE is set (CI images often set it), no process could cache a module's
# bytecode later, and every driver the tests start would compile its imports again.
$(STAMP): pyproject.toml
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -m pip install -q -e ".[local,dev]"
	@touch $(STAMP)
	@echo "setup: $(VENV) ready ($$($(BIN)/python --version))"

# delta-spark's jars, Spark's Kafka connector and Kafka's broker, from Maven Central once,
# cached outside the repo ($$MEDALLION_JARS_DIR, default ~/.cache/medallion/jars); quick when
# cached. Offline this warns and goes on: the embedded Delta engine needs no jars. Also
# medallion's scoring jar, built from its Java source with javac (without a JDK this warns:
# native scoring then runs its trees as SQL expressions). Then a class-data-sharing archive of
# the Spark driver's classes, once per java and jar set, so fresh Spark processes start warm.
jars: $(STAMP)
	@$(BIN)/python -m medallion.jvm fetch
	@$(BIN)/python -m medallion.class_archive

# Mermaid's renderer, for the test that draws the docs' diagrams in Chromium: from npm once,
# cached outside the repo. Offline (or without npm) this warns and goes on.
MERMAID_VERSION := 12.4.0
MERMAID_DIR := $(HOME)/.cache/medallion/mermaid-$(MERMAID_VERSION)
mermaid:
	@[ -f $(MERMAID_DIR)/mermaid.min.js ] || { \
	  tmp=$$(mktemp -d) && (cd $$tmp && npm pack -q mermaid@$(MERMAID_VERSION) >/dev/null 2>&1 \
	    && tar xzf mermaid-$(MERMAID_VERSION).tgz package/dist/mermaid.min.js) \
	  && mkdir -p $(MERMAID_DIR) && mv $$tmp/package/dist/mermaid.min.js $(MERMAID_DIR)/ \
	  && echo "setup: mermaid $(MERMAID_VERSION) cached in $(MERMAID_DIR)" \
	  || echo "setup: warning: could not fetch mermaid@$(MERMAID_VERSION) with npm (offline?): the docs' diagram test will say so"; \
	  rm -rf $$tmp; }

test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# The whole lambda loop on generated data: 14 days of history, the nights, a minute of live
# stream, reconcile, a summary table and reports/run-<timestamp>.html under the storage root.
demo: setup
	$(BIN)/medallion --env $(CONF) doctor
	$(BIN)/medallion --env $(CONF) demo
	$(BIN)/medallion --env $(CONF) status

# A local single-node Kafka (KRaft) on 127.0.0.1:stream.kafka.local_port, logs under <root>/kafka;
# creates stream.kafka.topic and stream.kafka.scores_topic when they are set.
kafka-up: setup
	$(BIN)/python -m medallion.kafka.broker up --env $(CONF) $(KAFKA_ARGS)

kafka-down:
	$(BIN)/python -m medallion.kafka.broker down --env $(CONF) $(KAFKA_ARGS)

bench: setup
	@set -e; for b in bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b; done

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf lakehouse reports spark-warehouse metastore_db derby.log .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
