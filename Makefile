# The two commands a newcomer needs: `make demo` and `make test`. Both create the environment first.
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/nlp-lstm
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-slow test-all bench bench-keras clean

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	@echo "== 1/2 sentiment classification from GloVe word vectors: pipelines/sentiment_glove.toml =="
	$(PY) benchmarks/get_glove.py
	$(CLI) run pipelines/sentiment_glove.toml
	$(CLI) classify --model runs/sentiment-glove/model \
		"What a wonderful, heartfelt film." \
		"The battery died after two days and support never answered." \
		"Not bad at all, I would buy it again." \
		"The plot was dull and the acting even worse."
	@echo "== 2/2 summarization, short demo run: pipelines/descriptions_demo.toml =="
	$(CLI) run pipelines/descriptions_demo.toml
	$(CLI) summarize --model runs/descriptions-demo/model \
		"2001: A Space Odyssey is a 1968 epic science fiction film produced and directed by Stanley Kubrick." \
		"The Danube is the second-longest river in Europe, after the Volga in Russia."

test: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q || [ $$? -eq 5 ]  # exit 5: no test carries the mark

test-all: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	bash benchmarks/run_all.sh

bench-keras: $(STAMP)  # installs TensorFlow into its own venv (/tmp/keras-venv), never into this project's
	$(PY) benchmarks/bench_keras.py

clean:
	rm -rf runs .pytest_cache
