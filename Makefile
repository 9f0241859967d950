# One entry point. `make export` and `make test` set everything up themselves on a fresh machine.
#   make export [RECIPE=synthetic|speech_commands|fsdd|folder] [KEYWORDS=word[,word]] [DATA="dir [dir ...]"] [MODEL=gru|lstm|rnn] [SIZE=mcu|pi] [HIDDEN=N] [LAYERS=N] [PROJ=N] [SEEDS="0 1 2"] [TEACHER_SEEDS="0 1 2"] [SENTENCES=N] [OUT=artifacts/NAME]
#   make test | report | bench | soak | frontend-lib | firmware-host | firmware-m4 | test-pi
#   make esphome [KEYWORD=word] [OUT=artifacts/NAME]: the run as an ESPHome micro_wake_word model in $(OUT)/esphome

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

RECIPE ?= synthetic
DATA ?=
# the keywords (synthetic recipe: any words, e.g. KEYWORDS=jarvis for a custom wake word; default: the ten
# Speech Commands words)
KEYWORDS ?=
MODEL ?= gru
# mcu: fits the firmware budget (<= 32 KB flash, <= 8 KB arena); pi: a larger Raspberry Pi model
SIZE ?= mcu
# optional overrides of the size's architecture (PROJ: input projection width, 0 = none)
HIDDEN ?=
LAYERS ?=
PROJ ?=
# empty: the recipe's training default (synthetic: 8 for one keyword, 30 for several; else the size's, 140 mcu, 64 pi)
EPOCHS ?=
# Speech Commands recipe: N synthetic running-speech sentences as training-only _unknown_ data (`--synth-sentences`;
# empty: the recipe's default, none). SENTENCES=1000 cut false alarms on real conversation 6-10x, at 1.8-3.1 pp of the
# standard figure and ~40 % more training time per epoch (README, "Running speech in training"; with EPOCHS=110 for
# the 30-minute budget)
SENTENCES ?=
# training seed(s): one (default 0), or several, e.g. SEEDS="0 1 2": one run per seed ($(RUN)-s<seed>), merged into
# $(RUN) by `python -m train merge` (their logits averaged: a Raspberry Pi model, no firmware sources)
SEEDS ?=
MERGED := $(word 2,$(SEEDS))
# knowledge distillation (opt-in), e.g. TEACHER_SEEDS="0 1 2": one run per seed ($(RUN)-teacher-s<seed>), merged
# into $(RUN)-teacher, which teaches the one model $(RUN) (`python -m train --teacher`; an MCU model as without it).
# README, "One MCU model taught by three": +7 pp at the export threshold for "jarvis", worse for "happy"
TEACHER_SEEDS ?=
ifneq ($(and $(MERGED),$(strip $(TEACHER_SEEDS))),)
$(error SEEDS="$(SEEDS)" merges several runs into one Raspberry Pi model, TEACHER_SEEDS="$(TEACHER_SEEDS)" distils them into one model: choose one)
endif
OUT ?= artifacts/default
NAME := $(notdir $(OUT))
RUN ?= runs/$(NAME)
REPORT ?= reports/$(NAME)
DATA_DIR ?= ../shared/data
SOAK_MINUTES ?= 60
# the wake word of `make esphome` (default: the first of KEYWORDS, else the run's only keyword) and its output folder
comma := ,
KEYWORD ?= $(firstword $(subst $(comma), ,$(KEYWORDS)))
ESPHOME_OUT ?= $(OUT)/esphome

export KWS_DATA_DIR ?= $(abspath $(DATA_DIR))

.PHONY: setup voices voices-nonfree export esphome train artifacts codegen firmware-record firmware-skip report bench soak test test-fast clean help
.DEFAULT_GOAL := help

help:
	@sed -n '1,4p' Makefile

# The front end as a shared library for the Python runtimes (firmware/firmware.mk: frontend-lib); without a C
# compiler the pymicro-features wheel is used, which on x86 gives the same features.
setup: $(STAMP)
	@(command -v flite && command -v festival && test -d /usr/share/festival/voices/us/cmu_us_slt_arctic_hts) >/dev/null \
	  || $(MAKE) --no-print-directory -s voices
	@if command -v $(CC) >/dev/null; then $(MAKE) --no-print-directory -s frontend-lib; \
	else echo "note: no C compiler ($(CC)): the front end comes from the pymicro-features wheel"; fi

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[edge,train,export,dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# flite and Festival's HTS voice, synthetic-recipe voice engines (Debian packages): installed when we are root with
# apt-get, else the recipe goes on without them and says so
VOICE_PACKAGES := flite festival festvox-us-slt-hts
voices:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing $(VOICE_PACKAGES) (synthetic voices)"; \
	  (apt-get install -y -qq --no-install-recommends $(VOICE_PACKAGES) >/dev/null 2>&1 || \
	   (apt-get update -qq && apt-get install -y -qq --no-install-recommends $(VOICE_PACKAGES) >/dev/null 2>&1)) \
	  || echo "note: could not install $(VOICE_PACKAGES); the synthetic recipe uses the other voices"; \
	else echo "note: $(VOICE_PACKAGES) not installed (sudo apt-get install $(VOICE_PACKAGES)); the synthetic recipe uses the other voices"; fi

# MBROLA, RHVoice and SVOX Pico: voices built from recordings of real people, in Debian's contrib/non-free section
# (MBROLA's voices are for non-commercial use; see README, "A custom wake word from text"). Opt-in: on Debian, as
# root, this adds contrib and non-free to apt's sources (/etc/apt/sources.list.d/kws-nonfree.sources) and installs them.
NONFREE_VOICE_PACKAGES := espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 rhvoice rhvoice-english libttspico-utils
NONFREE_SOURCES := /etc/apt/sources.list.d/kws-nonfree.sources
voices-nonfree:
	@. /etc/os-release 2>/dev/null; \
	if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || [ "$$ID" != debian ]; then \
	  echo "note: not root on Debian: install $(NONFREE_VOICE_PACKAGES) yourself (Debian contrib/non-free; Ubuntu multiverse)"; \
	else \
	  if [ ! -e $(NONFREE_SOURCES) ]; then echo "adding contrib non-free for $$VERSION_CODENAME to $(NONFREE_SOURCES)"; \
	    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: contrib non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
	      "$$VERSION_CODENAME" > $(NONFREE_SOURCES); fi; \
	  echo "installing $(NONFREE_VOICE_PACKAGES) (synthetic voices)"; \
	  (apt-get update -qq && apt-get install -y -qq --no-install-recommends $(NONFREE_VOICE_PACKAGES) >/dev/null 2>&1) \
	  || { echo "error: could not install $(NONFREE_VOICE_PACKAGES)" >&2; exit 1; }; \
	fi

DATA_FLAG := $(if $(DATA),--data $(DATA),) $(if $(KEYWORDS),--keywords $(KEYWORDS),)
ARCH_FLAGS := $(if $(HIDDEN),--hidden $(HIDDEN),) $(if $(LAYERS),--layers $(LAYERS),) $(if $(PROJ),--proj $(PROJ),)

TRAIN_CMD = $(PY) -m train --recipe $(RECIPE) $(DATA_FLAG) --model $(MODEL) --size $(SIZE) $(ARCH_FLAGS) $(if $(EPOCHS),--epochs $(EPOCHS),) \
  $(if $(SENTENCES),--synth-sentences $(SENTENCES),)

train: setup
ifneq ($(MERGED),)
	$(foreach s,$(SEEDS),$(TRAIN_CMD) --seed $(s) --out $(RUN)-s$(s) --force &&) \
	  $(PY) -m train merge $(foreach s,$(SEEDS),$(RUN)-s$(s)) --out $(RUN) --force
else ifneq ($(strip $(TEACHER_SEEDS)),)
	$(foreach s,$(TEACHER_SEEDS),$(TRAIN_CMD) --seed $(s) --out $(RUN)-teacher-s$(s) --force &&) \
	  $(PY) -m train merge $(foreach s,$(TEACHER_SEEDS),$(RUN)-teacher-s$(s)) --out $(RUN)-teacher --force && \
	  $(TRAIN_CMD) $(if $(SEEDS),--seed $(SEEDS),) --teacher $(RUN)-teacher --out $(RUN) --force
else
	$(TRAIN_CMD) $(if $(SEEDS),--seed $(SEEDS),) --out $(RUN) --force
endif

artifacts: setup
	@test -f $(RUN)/model.safetensors || $(MAKE) --no-print-directory train
	$(PY) -m export $(RUN) --out $(OUT) --force

codegen: setup
	$(PY) -m export codegen --artifacts $(OUT) --out firmware/generated

# Cortex-M4 costs of the exported model (needs arm-none-eabi-gcc and qemu-system-arm; skipped with a note otherwise)
firmware-record: codegen
	@if command -v arm-none-eabi-gcc >/dev/null && command -v qemu-system-arm >/dev/null; then \
	  $(MAKE) --no-print-directory firmware-m4 && \
	  $(PY) -m export codegen costs --build build/firmware --wav tests/data/speech_yes.wav --manifest $(OUT); \
	else echo "note: arm-none-eabi-gcc or qemu-system-arm not installed: firmware costs not measured"; fi

# real negative speech, when the data folder has it: the report adds FA/h per keyword on it (one stream); and
# real recordings of the keyword (wake words), when there are any: recall on them too
POSITIVES ?= $(if $(KEYWORDS),$(wildcard $(DATA_DIR)/wake_words_real/$(KEYWORDS)),)
NEGATIVES ?= $(wildcard $(DATA_DIR)/speech_negatives)
REAL_AUDIO_FLAGS := $(if $(NEGATIVES),--negatives $(NEGATIVES),) $(if $(and $(POSITIVES),$(NEGATIVES)),--positives $(POSITIVES),)

report: setup
	$(PY) -m export report $(OUT) --out $(REPORT) --force $(REAL_AUDIO_FLAGS)

# SIZE=pi, or several SEEDS merged, is a Raspberry Pi model: no firmware sources for it (`make codegen OUT=...` still
# makes them on request)
FIRMWARE_STEPS := $(if $(or $(filter pi,$(SIZE)),$(MERGED)),firmware-skip,codegen firmware-record)

firmware-skip:
	@echo "note: $(if $(MERGED),SEEDS=\"$(SEEDS)\" (merged),SIZE=pi) is a Raspberry Pi model: firmware/generated/ left as it is (make codegen OUT=$(OUT) to generate it anyway)"

export: train artifacts $(FIRMWARE_STEPS) report
	@echo "device artifacts in $(OUT), firmware sources in firmware/generated, report in $(REPORT)/report.md"

# ESPHome micro_wake_word: <word>.tflite + <word>.json (manifest v2) + <word>.export.json (measurements)
esphome: setup
	@test -f $(RUN)/model.safetensors || $(MAKE) --no-print-directory train
	$(PY) -m export esphome $(RUN) --keyword "$(KEYWORD)" --out $(ESPHOME_OUT) --force $(if $(DATA),--data $(DATA),)

bench: setup
	$(PY) -m edge bench --model $(OUT)
	$(PY) -m edge bench --model $(OUT) --json > $(OUT)/bench.json
	@echo "written $(OUT)/bench.json"

soak: setup
	$(PY) -m export soak $(OUT) --minutes $(SOAK_MINUTES)

test: setup
	$(PY) -m pytest tests

test-fast: setup
	$(PY) -m pytest tests -m "not slow"

clean:
	rm -rf build .cache .pytest_cache firmware/generated edge/native/*.so

-include firmware/firmware.mk
-include tests/pi/pi.mk
