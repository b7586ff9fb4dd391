# musicvid — fresh machine to running in one command each (see README.md).
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install system-deps demo test lint bench samples clean

$(VENV)/.installed: pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[local,dev]"
	# tinysoundfont renders the SoundFont (~100x real time, no system libraries). Every release
	# declares pyaudio (live playback, which we never use; it needs portaudio headers to build),
	# so it is installed without dependencies. Its one real dependency is numpy, already present.
	$(PIP) install -q --no-deps "tinysoundfont>=0.3.6"
	touch $@

install: $(VENV)/.installed

# apt only where pip cannot do it: espeak-ng speaks the sample videos' dialogue (tests of speech
# detection skip without it). Best effort: a machine without apt or root still installs and runs.
system-deps:
	@command -v espeak-ng >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq espeak-ng) >/dev/null 2>&1 || \
	  echo "note: espeak-ng not installed; speech samples fall back to tones"; }

demo: install system-deps
	$(VENV)/bin/musicvid demo

test: install system-deps
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check musicvid_core tests bench data

bench: install
	$(PY) bench/pipeline.py
	$(PY) bench/music_render.py
	$(PY) bench/mixing.py

samples: install system-deps
	$(PY) data/make_samples.py

clean:
	rm -rf $(VENV) data/samples data/out bench/out .pytest_cache
