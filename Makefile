# Two commands do all the set-up: `make run` starts the platform, `make test` runs the tests.
# The venv is made from Debian's Python where there is one: people's notebooks and jobs run
# as their own unprivileged accounts and must be able to read the interpreter (a pyenv
# Python under /root is not readable by them).
PYTHON ?= $(shell test -x /usr/bin/python3.11 && echo /usr/bin/python3.11 || echo python3.11)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
DATA_DIR ?= data
GPUS ?= auto

.PHONY: run test install install-test clean containers

$(VENV)/.installed: pyproject.toml client/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# the client (client/: flightbase-client) and the server (flightbase-server, which needs it);
	# a venv made before the split has the single `flightbase` distribution, which goes first
	$(PY) -m pip uninstall -q -y flightbase 2>/dev/null || true
	$(PY) -m pip install -q -e './client[notebook]' -e '.[test]'
	touch $@

# torch (CPU build) and Horovod 0.28.1, built once and cached outside the repo (docs/horovod.md)
$(VENV)/.ml-installed: $(VENV)/.installed scripts/install-ml.sh
	scripts/install-ml.sh $(PY)
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# Chart.js, which the jobqueue's dashboards serve (docs/dashboards.md): its built file is copied
# into the package, where it travels with a wheel or an image (node_modules does not); gitignored
CHART_JS := services/jobqueue/flightbase_jobqueue/pages/static/vendor/chart.umd.min.js
$(CHART_JS): node_modules/.installed
	mkdir -p $(dir $@)
	cp node_modules/chart.js/dist/chart.umd.min.js $@

.system-deps-run:
	scripts/system-deps.sh run
	touch $@

.system-deps-test: .system-deps-run $(VENV)/.installed
	scripts/system-deps.sh test
	# the real Helm engine for the chart tests; it declares Python 3.12 but runs on 3.11
	$(PY) -m pip install -q --ignore-requires-python helm-sdkpy==0.1.32
	touch $@

# The JupyterLab extension (flightbase_labext/, docs/jupyterlab.md): built offline with Node
# here, then installed as a wheel that carries the built assets (it installs without Node).
LABEXT_SOURCES := $(shell find flightbase_labext/src flightbase_labext/style flightbase_labext/flightbase_labext -type f -not -path '*/labextension/*' -not -path '*/__pycache__/*' -not -name '_version.py' 2>/dev/null)
$(VENV)/.labext-installed: $(VENV)/.installed flightbase_labext/package.json flightbase_labext/package-lock.json flightbase_labext/pyproject.toml $(LABEXT_SOURCES)
	cd flightbase_labext && npm ci --no-audit --no-fund --loglevel=error && PATH="$(CURDIR)/$(VENV)/bin:$$PATH" npm run build:prod
	$(PY) -m pip install -q './flightbase_labext[test]'
	$(PY) -m pip install -q --force-reinstall --no-deps ./flightbase_labext
	touch $@

# The embedded deployment's containers (scripts/containers.sh, images/README.md): as root,
# the Docker engine (installed and started when missing), the Debian 12 base and the two
# built-in images. Runs every time: each image's content hash is checked, and only an
# image whose Dockerfile, wheels or sources changed is rebuilt. Not root: containers are off.
containers: $(VENV)/.ml-installed $(VENV)/.labext-installed
	scripts/containers.sh all $(PY)

install: .system-deps-run $(VENV)/.installed $(VENV)/.ml-installed node_modules/.installed $(CHART_JS) $(VENV)/.labext-installed containers

install-test: install .system-deps-test

run: install
	$(VENV)/bin/flightbase up --port $(PORT) --data-dir $(DATA_DIR) --gpus $(GPUS)

# --durations: the slowest tests, so that a CI log shows where its time goes (target: under 60 min)
test: install-test
	$(PY) -m pytest -q --durations=30 $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) node_modules .system-deps-* $(dir $(CHART_JS))
