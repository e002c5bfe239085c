# Two commands set everything up on a fresh machine: `make sweep` and `make test`.
# Every target creates .venv and installs the project into it on first use.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PYTHON  := $(BIN)/python
STAMP   := $(VENV)/.installed

# A study file for sweep/submit; a study name (or file) for report.
STUDY   ?=
SWEEP_STUDY := $(or $(STUDY),sweeps/studies/quick.yaml)
REPORT_DIR  := $(if $(STUDY),results/$(basename $(notdir $(STUDY))),results)
RAY_ADDRESS ?=
# Where a submitted study writes: a path every node shares, or s3://... / gs://...
RESULTS ?=

.PHONY: venv test sweep report submit bench clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e '.[test]'
	touch $(STAMP)

test: venv
	$(PYTHON) -m pytest -q

sweep: venv
	$(PYTHON) -m sweeps run $(SWEEP_STUDY) $(ARGS)

report: venv
	$(PYTHON) -m analysis report $(REPORT_DIR)

submit: venv
	@test -n "$(RAY_ADDRESS)" || { echo "make submit needs RAY_ADDRESS=http://<head>:8265"; exit 2; }
	$(PYTHON) -m sweeps submit $(SWEEP_STUDY) --address $(RAY_ADDRESS) $(if $(RESULTS),--results $(RESULTS)) $(ARGS)

bench: venv
	$(PYTHON) -m benchmarks

clean-venv:
	rm -rf $(VENV)
