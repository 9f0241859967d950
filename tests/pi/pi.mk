# Raspberry Pi OS 64-bit emulation (tests/pi/README.md); included by the top-level Makefile, whose `setup`
# target provides the host venv (its pip fetches the aarch64 wheels, its versions are the ones pinned).
#   make pi-rootfs   build or refresh .cache/pi (emulated userland + aarch64 wheels; idempotent)
#   make test-pi     tests/test_pi_emulation.py: the edge runtime under emulation gives the x86 results

PI_MK_DIR := $(dir $(lastword $(MAKEFILE_LIST)))
PI_REPO := $(abspath $(PI_MK_DIR)../..)
PI_PYTHON ?= $(if $(PY),$(PY),$(PI_REPO)/.venv/bin/python)

.PHONY: pi-rootfs test-pi

pi-rootfs: setup
	PI_HOST_PYTHON=$(PI_PYTHON) bash $(PI_REPO)/tests/pi/make_rootfs.sh

test-pi: pi-rootfs
	cd $(PI_REPO) && $(PI_PYTHON) -m pytest -v tests/test_pi_emulation.py
