# musicvid — fresh machine to running in one command each (see README.md).
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install install-demo system-deps demo test lint bench samples clean experiments lab kernel package web image wheel-smoke library-index

# Two stamps: the full developer install (`make install`, `make test`, everything else) and the
# embedded default alone (`make demo`: the [local] extra, ~1 GB, without torch, Jupyter, moto ...).
# The full install satisfies the demo's stamp too; the demo's never satisfies the full one.
$(VENV)/.installed: pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[local,dev,notebooks,aws,musicgen,api,serve,library]"
	# asl-validator (npm) checks musicvid_core/workflow/workflow.asl.json in the tests; best effort without npm.
	-command -v npm >/dev/null 2>&1 && npm ci --prefix infra --no-audit --no-fund --silent
	# The notebooks' kernel, "Python (musicvid)", registered inside the venv (jupyter lab from the
	# venv finds it; `make kernel` registers it for a Jupyter installed elsewhere).
	$(PY) -m ipykernel install --sys-prefix --name musicvid --display-name "Python (musicvid)" >/dev/null
	# .gitattributes names the nbstripout filter; this defines it in .git/config (skipped outside git).
	-[ -d .git ] && $(VENV)/bin/nbstripout --install >/dev/null 2>&1
	# tinysoundfont, the faster SoundFont renderer (~250x real time; used over [local]'s midirenderer
	# when present, docs/install.md). Every release declares pyaudio (live playback, which we never
	# use; it needs portaudio headers to build), so it is installed without dependencies. Its one
	# real dependency is numpy, already present.
	$(PIP) install -q --no-deps "tinysoundfont>=0.3.6"
	touch $@ $(VENV)/.demo-installed

# What `pip install "musicvid[local]"` gives a user, editable: midirenderer renders the SoundFont.
$(VENV)/.demo-installed: pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[local]"
	touch $@

install: $(VENV)/.installed

install-demo: $(VENV)/.demo-installed

# apt only where pip cannot do it: espeak-ng speaks the sample videos' dialogue (tests of speech
# detection skip without it). Best effort: a machine without apt or root still installs and runs.
system-deps:
	@command -v espeak-ng >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq espeak-ng) >/dev/null 2>&1 || \
	  echo "note: espeak-ng not installed; speech samples fall back to tones"; }
	@# MuseScore General (MIT), the procedural composer's default SoundFont (docs/music.md, "SoundFont"):
	@# no PyPI package carries it. Without it the composer falls back to FluidR3, then pretty_midi's TimGM6mb.
	@[ -f /usr/share/sounds/sf3/MuseScore_General.sf3 ] || { command -v apt-get >/dev/null 2>&1 && \
	  ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq musescore-general-soundfont) >/dev/null 2>&1 || \
	  echo "note: musescore-general-soundfont not installed; the music renders with a thinner SoundFont"; }
	@# chromium: the web app's browser tests (tests/test_web.py) drive Debian's build through Playwright
	@# (Playwright's own browser download is not allowed offline); they skip without it.
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium) >/dev/null 2>&1 || \
	  echo "note: chromium not installed; the browser tests (pytest -k browser) skip"; }

demo: install-demo system-deps
	$(VENV)/bin/musicvid demo

test: install system-deps
	$(PY) -m pytest -q

# The wheel as a pip user installs it, in a fresh venv outside the checkout: doctor + a short run (CI).
wheel-smoke: install
	bash .ci/wheel-smoke

# After a change to the track analysis (ANALYSIS_VERSION): re-analyse the bundled library's tracks.
library-index: install
	$(PY) -c "from musicvid_core.stages.compose.track.library import ship_analyses; print(ship_analyses())"

lint: install
	$(VENV)/bin/ruff check musicvid_core tests bench data chalice_app infra

bench: install
	$(PY) bench/pipeline.py
	$(PY) bench/music_render.py
	$(PY) bench/mixing.py

# Every notebook run by papermill with its defaults into data/runs/<timestamp>-<name>/.
experiments: install system-deps
	@for nb in notebooks/0*.ipynb; do $(VENV)/bin/musicvid experiment $$nb || exit 1; done

lab: install
	$(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/

kernel: install
	$(PY) -m ipykernel install --user --name musicvid --display-name "Python (musicvid)"

samples: install system-deps
	$(PY) data/make_samples.py

# The AWS stack, offline: Chalice's SAM template merged with infra/ (bucket, table, Cognito, the state
# machine from musicvid_core/workflow/workflow.asl.json, per-function IAM, the model backends as
# parameters with their IAM and the SageMaker autoscaling under conditions), the three media steps turned into
# container-image functions (--finalize; the image is `make image`), then linted. Output in
# build/package/ (sam.json, deployment.zip, web/: the web app's static bundle); deploy with `sam deploy`
# (docs/deploy.md), then `python infra/static_site.py deploy --stack NAME` (config.json from the stack,
# upload, invalidate: docs/web.md). The browser origin allowed by CORS is the stack's own CloudFront
# site; MUSICVID_CORS_ORIGIN names another (CorsOrigin's default; --finalize points Chalice's preflight at it).
package: install web
	rm -rf build/package chalice_app/vendor && mkdir -p build chalice_app/vendor
	cp -r musicvid_core chalice_app/vendor/ && find chalice_app/vendor -name __pycache__ -prune -exec rm -rf {} +
	$(PY) infra/build_template.py build/resources.json
	# chalice_package.py: Chalice packages for the stack's runtime (build_template.RUNTIME, cp314 wheels),
	# not for the Python running the build
	cd chalice_app && AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} ../$(PY) ../infra/chalice_package.py \
	  --merge-template ../build/resources.json ../build/package
	$(PY) infra/build_template.py --finalize build/package/sam.json
	$(VENV)/bin/cfn-lint build/package/sam.json
	cd infra && npx --no-install asl-validator --json-path ../musicvid_core/workflow/workflow.asl.json
	rm -rf chalice_app/vendor
	$(PY) infra/static_site.py bundle build/package/web
	@unzip -l build/package/deployment.zip | tail -1 | awk '{printf "deployment.zip unzipped: %.1f MB\n", $$1/1e6}'

# The web app's static bundle (docs/web.md): the files `musicvid serve` serves, for the stack's S3 bucket
# behind CloudFront (`make package` puts the same in build/package/web). The deploy adds config.json
# (python infra/static_site.py deploy --stack NAME).
web: install
	$(PY) infra/static_site.py bundle build/web

# The media steps' container image (analyzer, audio_generator, av_operator; docs/deploy.md), built
# from the repository root. The tag defaults to a hash of what goes into the image, so a new build
# gets a new tag (CloudFormation redeploys a function only when its ImageUri changes).
IMAGE_NAME ?= musicvid-media
IMAGE_TAG  ?= $(shell cat pyproject.toml README.md infra/lambda-media/Dockerfile \
                $$(find musicvid_core -name '*.py' | LC_ALL=C sort) 2>/dev/null | sha256sum | cut -c1-12)
image:
	@command -v docker >/dev/null 2>&1 || { echo "make image: docker is not installed; build the image on a machine with Docker (docs/deploy.md)" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "make image: the Docker daemon is not reachable (is it running?)" >&2; exit 1; }
	DOCKER_BUILDKIT=1 docker build --platform linux/amd64 -f infra/lambda-media/Dockerfile \
	  -t $(IMAGE_NAME):$(IMAGE_TAG) -t $(IMAGE_NAME):latest .
	@echo "built $(IMAGE_NAME):$(IMAGE_TAG); push it to ECR and deploy with MediaImageUri=<repo uri>:$(IMAGE_TAG)"

clean:
	rm -rf $(VENV) data/samples data/out bench/out .pytest_cache
