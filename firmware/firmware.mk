# Firmware build rules. Included by the top-level Makefile; also usable on its own from the repo root:
#   make -f firmware/firmware.mk firmware-host [FW_GEN_DIR=...] [FW_BUILD_DIR=...]
#
# Targets
#   firmware-host      host program (gcc): $(FW_BUILD_DIR)/host/kws_host and .../kws_model_runner
#   firmware-detect-runner  host harness of the detector alone: $(FW_BUILD_DIR)/host/kws_detect_runner
#   firmware-m4        Cortex-M4F image for QEMU mps2-an386: $(FW_BUILD_DIR)/m4/kws_m4.elf
#   firmware-run-m4    run the M4 image in QEMU on FW_WAV=path/to/16k_mono.wav (prints stats)
#   firmware-size      flash/RAM report of the M4 image
#   firmware-costs     flash/RAM/stack/instructions per frame as JSON (FW_WAV=... runs it under QEMU)
#   frontend-lib       the front end as a shared library for edge/ (frontend-lib-aarch64: for a Pi)
#   firmware-third-party  fetch the TFLM audio front end (pymicro-features source package) from PyPI
#   firmware-clean
#
# Inputs: the generated C files in $(FW_GEN_DIR) (model_data.[ch], model_tflite.[ch],
# kws_frontend_config.h, kws_settings.h) written by `make codegen` / `make export`
# (python -m export codegen --artifacts DIR --out DIR). The third-party front end is downloaded into
# $(FW_THIRD_PARTY_DIR) (git-ignored), never committed.

FW_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
FW_PYTHON ?= $(if $(wildcard .venv/bin/python),.venv/bin/python,python3)
FW_GEN_DIR ?= $(FW_DIR)/generated
FW_BUILD_DIR ?= build/firmware
FW_THIRD_PARTY_DIR ?= build/firmware/third_party

# ---- third-party front end ---------------------------------------------------------------------
FW_PMF_VERSION := 2.0.2
FW_PMF_DIR := $(FW_THIRD_PARTY_DIR)/pymicro_features-$(FW_PMF_VERSION)
FW_PMF_STAMP := $(FW_PMF_DIR)/.unpacked
FW_FE_LIB := $(FW_PMF_DIR)/tensorflow/lite/experimental/microfrontend/lib
FW_FE_NAMES := window window_util filterbank filterbank_util frontend frontend_util log_lut log_scale \
               log_scale_util noise_reduction noise_reduction_util pcan_gain_control pcan_gain_control_util
FW_FE_SRCS := $(addprefix $(FW_FE_LIB)/,$(addsuffix .cc,$(FW_FE_NAMES))) \
              $(FW_PMF_DIR)/kissfft/kiss_fft.cc $(FW_PMF_DIR)/kissfft/tools/kiss_fftr.cc

$(FW_PMF_STAMP):
	@mkdir -p $(FW_THIRD_PARTY_DIR)
	$(FW_PYTHON) -m pip download --quiet --no-deps --no-binary :all: \
	    pymicro-features==$(FW_PMF_VERSION) -d $(FW_THIRD_PARTY_DIR)
	tar -xzf $(FW_THIRD_PARTY_DIR)/pymicro_features-$(FW_PMF_VERSION).tar.gz -C $(FW_THIRD_PARTY_DIR)
	@touch $@

$(FW_FE_SRCS): $(FW_PMF_STAMP) ;

.PHONY: firmware-third-party
firmware-third-party: $(FW_PMF_STAMP)

# ---- sources -----------------------------------------------------------------------------------
FW_CORE_NAMES := kws_kernels kws_frontend kws_fe_params kws_fft kws_fe_alloc kws_app kws_detect kws_profile
FW_GEN_NAMES := model_data model_tflite
FW_GEN_FILES := $(addprefix $(FW_GEN_DIR)/,model_data.c model_data.h model_tflite.c model_tflite.h \
                  kws_frontend_config.h)
# Application settings (labels, detection): needed by the app and the detector only, so that the
# kernel test harness builds for any model (export/codegen writes it for streaming models).
FW_SETTINGS := $(FW_GEN_DIR)/kws_settings.h
FW_SETTINGS_USERS := kws_app kws_detect

$(FW_GEN_FILES) $(FW_SETTINGS):
	@echo "firmware: missing $@ -- run 'make codegen' (python -m export codegen --artifacts DIR --out $(FW_GEN_DIR))" >&2
	@exit 2

FW_INCLUDES := -I$(FW_DIR)/include -I$(FW_DIR)/src -I$(FW_GEN_DIR) -I$(FW_PMF_DIR) -I$(FW_PMF_DIR)/kissfft
# -ffp-contract=off: the front end builds its window, PCAN and FFT tables at start-up in float; fused
# multiply-adds (GCC's default where the ISA has them: Cortex-M4F, aarch64) round those differently from
# x86 and change rare feature values. Without contraction every target computes x86's features exactly
# (tests/test_firmware_host.py::test_frontend_is_identical_on_aarch64). The Python runtimes' library
# (frontend-lib below) uses the same flags.
FW_FP_FLAGS := -ffp-contract=off
FW_COMMON_FLAGS := -DFIXED_POINT=16 -MMD -MP $(FW_FP_FLAGS)
FW_OWN_FLAGS := -std=c99 -Wall -Wextra -Wno-unused-parameter
# Third-party front end: compiled unmodified as C (its .cc files are C code apart from the FFT glue,
# which firmware/src/kws_fft.c replaces); start-up malloc/fprintf are redirected to a static arena.
FW_FE_FLAGS := -std=gnu99 -w -include $(FW_DIR)/src/kws_fe_alloc.h

# $(call fw_rules,TARGET,CC,CFLAGS,BOARD_DIR): object rules for one build target
define fw_rules
$(FW_BUILD_DIR)/$(1)/obj/%.o: $(FW_DIR)/src/%.c $(FW_GEN_FILES) | $(FW_PMF_STAMP)
	@mkdir -p $$(@D)
	$(2) $(3) $(FW_COMMON_FLAGS) $(FW_OWN_FLAGS) $(FW_INCLUDES) -c $$< -o $$@
$(FW_BUILD_DIR)/$(1)/obj/%.o: $(4)/%.c $(FW_GEN_FILES) | $(FW_PMF_STAMP)
	@mkdir -p $$(@D)
	$(2) $(3) $(FW_COMMON_FLAGS) $(FW_OWN_FLAGS) $(FW_INCLUDES) -c $$< -o $$@
$(FW_BUILD_DIR)/$(1)/gen/%.o: $(FW_GEN_DIR)/%.c $(FW_GEN_FILES)
	@mkdir -p $$(@D)
	$(2) $(3) $(FW_COMMON_FLAGS) $(FW_OWN_FLAGS) $(FW_INCLUDES) -c $$< -o $$@
$(FW_BUILD_DIR)/$(1)/fe/%.o: $(FW_FE_LIB)/%.cc $(FW_GEN_FILES)
	@mkdir -p $$(@D)
	$(2) $(3) $(FW_COMMON_FLAGS) $(FW_FE_FLAGS) $(FW_INCLUDES) -x c -c $$< -o $$@
$(FW_BUILD_DIR)/$(1)/fe/%.o: $(FW_PMF_DIR)/kissfft/%.cc
	@mkdir -p $$(@D)
	$(2) $(3) $(FW_COMMON_FLAGS) $(FW_FE_FLAGS) $(FW_INCLUDES) -x c -c $$< -o $$@
$(FW_BUILD_DIR)/$(1)/fe/%.o: $(FW_PMF_DIR)/kissfft/tools/%.cc
	@mkdir -p $$(@D)
	$(2) $(3) $(FW_COMMON_FLAGS) $(FW_FE_FLAGS) $(FW_INCLUDES) -x c -c $$< -o $$@
endef

fw_objs = $(addprefix $(FW_BUILD_DIR)/$(1)/obj/,$(addsuffix .o,$(2)))
FW_FE_OBJ_NAMES := $(FW_FE_NAMES) kiss_fft kiss_fftr

# ---- host --------------------------------------------------------------------------------------
FW_HOST_CC ?= gcc
FW_HOST_CFLAGS ?= -O2 -g
FW_HOST_DIR := $(FW_BUILD_DIR)/host
FW_HOST_FE_OBJS := $(addprefix $(FW_HOST_DIR)/fe/,$(addsuffix .o,$(FW_FE_OBJ_NAMES)))
FW_HOST_GEN_OBJS := $(addprefix $(FW_HOST_DIR)/gen/,$(addsuffix .o,$(FW_GEN_NAMES)))
FW_HOST_OBJS := $(call fw_objs,host,$(FW_CORE_NAMES) board_host) $(FW_HOST_FE_OBJS) $(FW_HOST_GEN_OBJS)

$(eval $(call fw_rules,host,$(FW_HOST_CC),$(FW_HOST_CFLAGS),$(FW_DIR)/boards/host))
$(call fw_objs,host,$(FW_SETTINGS_USERS)): $(FW_SETTINGS)

$(FW_HOST_DIR)/kws_host: $(FW_HOST_OBJS)
	$(FW_HOST_CC) $(FW_HOST_CFLAGS) $^ -lm -o $@

$(FW_HOST_DIR)/kws_model_runner: $(call fw_objs,host,kws_kernels model_runner) $(FW_HOST_DIR)/gen/model_data.o
	$(FW_HOST_CC) $(FW_HOST_CFLAGS) $^ -o $@

# The detector needs only kws_settings.h: one compiler call, no model or front end.
FW_DETECT_RUNNER_SRCS := $(FW_DIR)/src/kws_detect.c $(FW_DIR)/boards/host/detect_runner.c
$(FW_HOST_DIR)/kws_detect_runner: $(FW_DETECT_RUNNER_SRCS) $(FW_DIR)/include/kws_detect.h $(FW_SETTINGS)
	@mkdir -p $(@D)
	$(FW_HOST_CC) $(FW_HOST_CFLAGS) $(FW_OWN_FLAGS) -I$(FW_DIR)/include -I$(FW_GEN_DIR) $(FW_DETECT_RUNNER_SRCS) -o $@

.PHONY: firmware-host firmware-model-runner firmware-detect-runner
firmware-host: $(FW_HOST_DIR)/kws_host $(FW_HOST_DIR)/kws_model_runner
firmware-model-runner: $(FW_HOST_DIR)/kws_model_runner
firmware-detect-runner: $(FW_HOST_DIR)/kws_detect_runner

# ---- the front end as a shared library for the Python runtimes (edge/frontend.py) ---------------
#   make frontend-lib            for this machine: edge/native/libkws_frontend.<uname -m>.so
#   make frontend-lib-aarch64    cross-built for a Raspberry Pi (aarch64-linux-gnu-gcc), to copy there
# The firmware's front-end sources and flags (no arena: heap, any configuration, many instances); the
# configuration goes through the firmware's own kws_fe_params.c.
FE_LIB_HOST_ARCH := $(shell uname -m)
FE_LIB_DIR := edge/native
FE_LIB_CFLAGS ?= -O2
FE_LIB_SRCS := $(FW_DIR)/src/kws_frontend_lib.c $(FW_DIR)/src/kws_fe_params.c $(FW_DIR)/src/kws_fft.c $(FW_FE_SRCS)
FE_LIB_HDRS := $(FW_DIR)/include/kws_fe_params.h
# $(call fe_lib_cc,ARCH): the native compiler for this machine, the GNU cross compiler for another
fe_lib_cc = $(if $(filter $(FE_LIB_HOST_ARCH),$(1)),$(CC),$(1)-linux-gnu-gcc)

$(FE_LIB_DIR)/libkws_frontend.%.so: $(FE_LIB_SRCS) $(FE_LIB_HDRS) $(FW_DIR)/firmware.mk | $(FW_PMF_STAMP)
	@mkdir -p $(@D)
	$(call fe_lib_cc,$*) $(FE_LIB_CFLAGS) $(FW_FP_FLAGS) -DFIXED_POINT=16 -shared -fPIC -fvisibility=hidden \
	    -std=gnu99 -w -I$(FW_DIR)/include -I$(FW_PMF_DIR) -I$(FW_PMF_DIR)/kissfft -x c $(FE_LIB_SRCS) -lm -o $@.tmp
	@mv $@.tmp $@

.PHONY: frontend-lib frontend-lib-aarch64
frontend-lib: $(FE_LIB_DIR)/libkws_frontend.$(FE_LIB_HOST_ARCH).so
frontend-lib-aarch64: $(FE_LIB_DIR)/libkws_frontend.aarch64.so

# ---- Cortex-M4F on QEMU mps2-an386 ---------------------------------------------------------------
FW_M4_PREFIX ?= arm-none-eabi-
FW_M4_CC := $(FW_M4_PREFIX)gcc
FW_M4_ARCH := -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16
# FW_PROFILE=1: time every operator kind (adds a "K" line to the --stats output)
FW_PROFILE ?= 0
FW_M4_CFLAGS ?= $(FW_M4_ARCH) -O2 -g -ffunction-sections -fdata-sections $(if $(filter 1,$(FW_PROFILE)),-DKWS_PROFILE)
FW_M4_BOARD := $(FW_DIR)/boards/mps2_an386
FW_M4_DIR := $(FW_BUILD_DIR)/m4
FW_M4_LDSCRIPT := $(FW_M4_BOARD)/mps2_an386.ld
FW_M4_FE_OBJS := $(addprefix $(FW_M4_DIR)/fe/,$(addsuffix .o,$(FW_FE_OBJ_NAMES)))
FW_M4_GEN_OBJS := $(addprefix $(FW_M4_DIR)/gen/,$(addsuffix .o,$(FW_GEN_NAMES)))
FW_M4_OBJS := $(call fw_objs,m4,$(FW_CORE_NAMES) startup board_qemu semihosting) $(FW_M4_FE_OBJS) \
              $(FW_M4_GEN_OBJS)

$(eval $(call fw_rules,m4,$(FW_M4_CC),$(FW_M4_CFLAGS),$(FW_M4_BOARD)))
$(call fw_objs,m4,$(FW_SETTINGS_USERS)): $(FW_SETTINGS)

$(FW_M4_DIR)/kws_m4.elf: $(FW_M4_OBJS) $(FW_M4_LDSCRIPT)
	$(FW_M4_CC) $(FW_M4_CFLAGS) -nostartfiles --specs=nano.specs -T $(FW_M4_LDSCRIPT) \
	    -Wl,--gc-sections -Wl,-Map=$(FW_M4_DIR)/kws_m4.map $(FW_M4_OBJS) -lm -o $@

.PHONY: firmware-m4 firmware-run-m4 firmware-size
firmware-m4: $(FW_M4_DIR)/kws_m4.elf

FW_QEMU ?= qemu-system-arm
FW_QEMU_FLAGS := -M mps2-an386 -cpu cortex-m4 -nographic -monitor none -icount shift=0
FW_WAV ?=
firmware-run-m4: $(FW_M4_DIR)/kws_m4.elf
	@test -n "$(FW_WAV)" || { echo "firmware-run-m4: set FW_WAV=path/to/16k_mono.wav" >&2; exit 2; }
	$(FW_QEMU) $(FW_QEMU_FLAGS) -semihosting-config enable=on,target=native,arg=kws_m4,arg=$(FW_WAV),arg=--stats \
	    -kernel $<

# flash/RAM (+ stack and instructions per frame with FW_WAV) as JSON: export.codegen.firmware_costs()
.PHONY: firmware-costs
firmware-costs: $(FW_M4_DIR)/kws_m4.elf
	$(FW_PYTHON) -m export codegen costs --build $(FW_BUILD_DIR) --json $(if $(FW_WAV),--wav $(FW_WAV))

firmware-size: $(FW_M4_DIR)/kws_m4.elf
	$(FW_M4_PREFIX)size -A $< | grep -E '^(\.text|\.rodata|\.data|\.bss|\.stack|\.heap|section)'
	$(FW_M4_PREFIX)size $(FW_M4_DIR)/obj/kws_kernels.o $(FW_M4_GEN_OBJS)

.PHONY: firmware-clean
firmware-clean:
	rm -rf $(FW_BUILD_DIR)/host $(FW_BUILD_DIR)/m4

-include $(wildcard $(FW_BUILD_DIR)/host/*/*.d $(FW_BUILD_DIR)/m4/*/*.d)
