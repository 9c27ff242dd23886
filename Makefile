# Lectern: two commands on a fresh Debian/Ubuntu machine.
#   make run    installs what is missing, then plays setlists/demo.toml
#   make test   installs what is missing, then runs ruff and the test suite
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
APT_PKGS := espeak-ng libespeak-ng1 libportaudio2 liblo-tools wordnet-base ffmpeg xvfb sox fonts-dejavu-core

.PHONY: setup apt venv run test lint bench soak clean-venv corpus corpus-check

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

venv: $(VENV)/.installed

run: setup
	$(VPY) run.py

test: setup
	$(VPY) -m ruff check .
	$(VPY) -m pytest

bench: setup
	$(VPY) run.py bench

soak: setup
	$(VPY) bench/soak.py

clean-venv:
	rm -rf $(VENV)

# The cleaned corpus the models learn from, rebuilt from the original files (rules in cleaning.py).
corpus: setup
	$(VPY) -m performance.textgen.cleaning assets/corpora/poetry_en_original assets/corpora/poetry_en

# Verify the original corpus against its SOURCES.md hashes, the cleaned one against its own, and
# that cleaning the originals again reproduces the shipped cleaned files byte for byte.
corpus-check:
	@for d in poetry_en_original poetry_en; do (cd assets/corpora/$$d && grep -E '^\| en\.' SOURCES.md | awk -F'|' '{gsub(/ /,"",$$2); gsub(/ /,"",$$3); print $$3"  "$$2}' | sha256sum -c) || exit 1; done
	@rm -rf /tmp/lectern-corpus-check && $(VPY) -m performance.textgen.cleaning assets/corpora/poetry_en_original /tmp/lectern-corpus-check >/dev/null && diff -r -x SOURCES.md /tmp/lectern-corpus-check assets/corpora/poetry_en && echo "cleaned corpus reproduces"
