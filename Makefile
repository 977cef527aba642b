# The two-command promise: `make run` and `make test` on a fresh Debian machine with Python 3.11.
# Everything either needs is installed from here (or from .ci/run for CI-only tools).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The offscreen Qt platform needs these; without a font, text renders invisible.
QT_DEBS := libegl1 libgl1 libfontconfig1 libxkbcommon0 libdbus-1-3 fonts-dejavu-core
# A real X display (make run) also needs Qt's xcb platform plugin's libraries (Qt >= 6.5 wants xcb-cursor).
XCB_DEBS := libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-render-util0 libxcb-shape0 \
	libxcb-randr0 libxcb-xkb1 libxkbcommon-x11-0
SIMULATE ?= 0

.PHONY: run test lint typecheck pytest qt-deps run-deps debs venv clean screenshots

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "nodewatch needs Python >= 3.11, got " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[collector,viewer,alerts,dev]'
	@touch $(STAMP)

qt-deps:
	@$(MAKE) --no-print-directory debs DEBS="$(QT_DEBS)"

run-deps:
	@$(MAKE) --no-print-directory debs DEBS="$(QT_DEBS) $(XCB_DEBS)"

# Install the Debian packages in $(DEBS) that are missing (as root), or print the line to run.
# apt waits up to APT_LOCK_WAIT_S for another apt or unattended-upgrades to let go of its lock,
# and a failure ends in one line saying what to run by hand.
APT_LOCK_WAIT_S ?= 600
APT := DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=$(APT_LOCK_WAIT_S) -o Acquire::Retries=3
debs:
	@missing=""; for p in $(DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian packages:$$missing (apt-get update, then install; waits up to $(APT_LOCK_WAIT_S) s for apt's lock)"; \
	    { $(APT) update -qq && $(APT) install -y -qq --no-install-recommends $$missing >/dev/null; } || \
	      { echo "nodewatch: installing Debian packages failed; run: sudo apt-get update && sudo apt-get install -y$$missing" >&2; exit 1; }; \
	  else \
	    echo "Qt needs these Debian packages. Run:"; \
	    echo "  sudo apt-get install -y$$missing"; \
	  fi; \
	fi

run: venv run-deps
	$(BIN)/nodewatch up$(if $(filter-out 0,$(SIMULATE)), --simulate $(SIMULATE))

# docs/screenshots/ from a real collector, real agents and a simulated fleet, under Xvfb (a real X
# server, installed here with Qt's xcb libraries as root; without root and without xvfb-run: offscreen).
screenshots: venv
	@$(MAKE) --no-print-directory debs DEBS="$(QT_DEBS) $(XCB_DEBS) xvfb"
	@if command -v xvfb-run >/dev/null; then set -x; xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python tools/screenshots.py; \
	else set -x; $(BIN)/python tools/screenshots.py; fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy .

pytest: venv qt-deps
	$(BIN)/pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis tests/artifacts
