# Lectern: two commands on a fresh Debian/Ubuntu machine.
#   make run    installs what is missing, then plays setlists/demo.toml
#   make test   installs what is missing, then runs ruff and the test suite
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
APT_PKGS := espeak-ng libespeak-ng1 libportaudio2 liblo-tools wordnet-base ffmpeg xvfb sox fonts-dejavu-core \
            xdotool imagemagick openbox x11-utils tmux jackd2 chromium chromium-driver

.PHONY: setup apt venv venv-test run test lint bench soak clean-venv corpus-check

setup: apt venv

# apt packages, only those missing (needs root or sudo the first time).
apt:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(VENV)/.installed: requirements.txt
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -r requirements.txt
	touch $@

# Test-only pins (pytest, hypothesis, ruff) on top of the runtime ones.
$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(VPY) -m pip install -q -r requirements-test.txt
	touch $@

venv: $(VENV)/.installed

venv-test: $(VENV)/.installed-test

run: setup
	$(VPY) run.py

test: apt venv-test
	$(VPY) -m ruff check .
	$(VPY) -m pytest

bench: setup
	$(VPY) run.py bench

soak: setup
	$(VPY) bench/soak.py

clean-venv:
	rm -rf $(VENV)

# Verify the shipped corpus against the hashes recorded in its SOURCES.md.
corpus-check:
	@cd assets/corpora/poetry_en && grep -E '^\| en\.' SOURCES.md | awk -F'|' '{gsub(/ /,"",$$2); gsub(/ /,"",$$3); print $$3"  "$$2}' | sha256sum -c
