# vmm: a minimal KVM hypervisor. `make run` boots the default guest; `make test` runs every tier.
CC      ?= gcc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread -MMD -MP
LDLIBS  := -luring -llz4 -lzstd -ljson-c -lseccomp -lz -lpthread
# Static so the same binary runs inside the nested test host's initramfs.
LDFLAGS += -static

B := build
LIB_SRCS  := $(filter-out vmm/main.c,$(wildcard vmm/*.c vmm/*/*.c devices/*.c))
LIB_OBJS  := $(LIB_SRCS:%.c=$(B)/obj/%.o)
# Test doubles shared by the unit tests and the fuzzers (never in libvmm.a).
FAKE_SRCS := $(wildcard tests/fake/*.c)
UNIT_SRCS := $(wildcard tests/unit/*.c) $(FAKE_SRCS)
UNIT_OBJS := $(UNIT_SRCS:%.c=$(B)/obj/%.o)
FUZZ_SRCS := $(wildcard tests/fuzz/*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(B)/fuzz/%)
# Host-side test tools (tests/tools/NAME.c -> build/tools/NAME, static: scenarios ship them into
# the nested test host with a "# tools: NAME" header, see tests/kvm/run.sh).
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOL_BINS := $(TOOL_SRCS:tests/tools/%.c=$(B)/tools/%)
C_FILES    = $(shell git ls-files '*.c' '*.h' 2>/dev/null)

GUEST_DIR := $(B)/guest

.PHONY: all tools deps guest testhost-kernel run test unit scripts kvm-tests e2e fuzz-smoke format format-check lint bench clean
all: $(B)/vmm firmware

include firmware/firmware.mk

deps:
	@scripts/deps.sh

$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

# The build a snapshot names in its header (vmm/snapshot/format.c): a snapshot restores only on
# the build that wrote it.
# build/build-id changes (and format.o is rebuilt) only when the id does.
VMM_BUILD_ID := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
_ := $(shell mkdir -p $(B) && (echo '$(VMM_BUILD_ID)' | cmp -s - $(B)/build-id || echo '$(VMM_BUILD_ID)' >$(B)/build-id))
$(B)/obj/vmm/snapshot/format.o $(B)/fuzz/obj/vmm/snapshot/format.o: $(B)/build-id
$(B)/obj/vmm/snapshot/format.o $(B)/fuzz/obj/vmm/snapshot/format.o: CFLAGS += -DVMM_BUILD_ID='"$(VMM_BUILD_ID)"'

$(B)/libvmm.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/vmm: $(B)/obj/vmm/main.o $(B)/libvmm.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tools/%: tests/tools/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<

tools: $(TOOL_BINS)

# The default guest: cached kernel + our initramfs, installed next to the binary (build/guest/).
guest: $(B)/vmm
	@guest-kernel-config/install-guest.sh $(GUEST_DIR)

run: deps all guest
	@tests/run-demo.sh

# --- tests ---------------------------------------------------------------------------------------
$(B)/unit-tests: $(UNIT_OBJS) $(B)/libvmm.a
	$(CC) $(CFLAGS) -o $@ $^ -lcriterion $(LDLIBS)

unit: $(B)/unit-tests
	@tests/tier.sh unit $(B)/unit-tests

# The test harness's own tests (tests/lib/test-*.sh): no KVM, no guest.
scripts:
	@tests/tier.sh scripts tests/lib/run-tests.sh

kvm-tests: all firmware $(TOOL_BINS)
	@tests/tier.sh kvm tests/kvm/run.sh

e2e: all guest
	@tests/tier.sh e2e tests/e2e/run.sh

# Fuzzers: the library is compiled once with the sanitizers (build/fuzz/obj/), then each harness
# links against it.
FUZZ_CFLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -pthread -fsanitize=fuzzer,address,undefined \
	       -Wno-gnu-variable-sized-type-not-at-end -MMD -MP
FUZZ_OBJS   := $(LIB_SRCS:%.c=$(B)/fuzz/obj/%.o)
$(B)/fuzz/obj/%.o: %.c
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -c -o $@ $<

$(B)/libvmm-fuzz.a: $(FUZZ_OBJS)
	@rm -f $@
	ar rcs $@ $^

FUZZ_FAKE_OBJS := $(FAKE_SRCS:%.c=$(B)/fuzz/obj/%.o)
$(B)/fuzz/%: $(B)/fuzz/obj/tests/fuzz/%.o $(FUZZ_FAKE_OBJS) $(B)/libvmm-fuzz.a
	clang $(FUZZ_CFLAGS) -o $@ $^ -luring -llz4 -lzstd -ljson-c -lseccomp -lz

fuzz-smoke: $(FUZZ_BINS)
	@tests/tier.sh fuzz tests/fuzz/smoke.sh $(FUZZ_BINS)

format:
	clang-format -i $(C_FILES)

format-check:
	@tests/tier.sh format clang-format --dry-run -Werror $(C_FILES)

# The layering rule (tests/lib/check-includes.sh: which folder may include which), then cppcheck.
lint:
	@tests/tier.sh lint sh -c 'tests/lib/check-includes.sh && cppcheck --quiet \
		--error-exitcode=1 --std=c11 --inline-suppr --enable=warning,portability \
		--suppress=missingIncludeSystem -D_GNU_SOURCE -I vmm -I devices vmm devices'

# The nested test host's kernel (cached like the guest's). After `guest`, so the two kernel
# builds never extract the shared source tree at the same time.
testhost-kernel: guest
	@guest-kernel-config/build-kernel.sh tests/testhost/host.config >/dev/null

# Everything the tiers need is built first, in parallel (a build failure still shows up as the
# failing tier). The tiers that boot the nested test host (one TCG vCPU each) then run side by
# side: the firmware tier, and the e2e tier in two shards (E2E_SHARDS), the firmware tier's
# output held back until the e2e tier ends.
NPROC := $(shell nproc 2>/dev/null || echo 2)
test: deps
	@rm -f $(B)/tiers.log
	-@$(MAKE) --no-print-directory -j$(NPROC) -k all testhost-kernel $(B)/unit-tests $(FUZZ_BINS) $(TOOL_BINS)
	@$(MAKE) --no-print-directory -k format-check lint scripts unit fuzz-smoke; rc=$$?; \
		$(MAKE) --no-print-directory kvm-tests >$(B)/kvm-tier.out 2>&1 & kvm=$$!; \
		E2E_SHARDS=2 $(MAKE) --no-print-directory e2e || rc=1; \
		wait $$kvm || rc=1; cat $(B)/kvm-tier.out; \
		tests/summary.sh $(B)/tiers.log format lint scripts unit fuzz kvm e2e; exit $$rc

bench: deps all guest
	@bench/run.sh

clean:
	rm -rf $(B)

-include $(LIB_OBJS:.o=.d) $(UNIT_OBJS:.o=.d) $(B)/obj/vmm/main.d $(FUZZ_OBJS:.o=.d) \
	 $(FUZZ_FAKE_OBJS:.o=.d) \
	 $(FUZZ_SRCS:tests/fuzz/%.c=$(B)/fuzz/obj/tests/fuzz/%.d) $(TOOL_BINS:=.d)
