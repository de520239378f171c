# Firmware images (freestanding test guests, docs/firmware.md): build/firmware/NAME.elf for each
# firmware/NAME.c, linked with firmware/lib/. Include this fragment from the top-level Makefile
# (`include firmware/firmware.mk`, then depend on `firmware`), or use it alone:
#   make -f firmware/firmware.mk [B=build]
B	?= build
FW_CC	?= gcc
FW_OUT	:= $(B)/firmware
# No SSE (CR4.OSFXSR is off in the entry state), no red zone, no PIC, nothing from libc.
FW_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -ffreestanding -nostdlib -static -fno-pic \
	-fno-pie -mno-red-zone -mgeneral-regs-only -mcmodel=small -fno-stack-protector \
	-fno-asynchronous-unwind-tables -fno-tree-loop-distribute-patterns -fcf-protection=none \
	-fno-common -Ifirmware/lib -MMD -MP
FW_LDFLAGS := -nostdlib -static -no-pie -Wl,-T,firmware/firmware.ld -Wl,--build-id=none \
	-Wl,-z,max-page-size=4096 -Wl,-z,noexecstack
FW_PROGS := $(basename $(notdir $(wildcard firmware/*.c)))
FW_ELFS  := $(FW_PROGS:%=$(FW_OUT)/%.elf)
FW_LIB_SRCS := $(wildcard firmware/lib/*.c firmware/lib/*.S)
FW_LIB_OBJS := $(patsubst firmware/lib/%,$(FW_OUT)/obj/lib/%.o,$(FW_LIB_SRCS))

.PHONY: firmware
.SECONDARY: $(FW_LIB_OBJS) $(FW_PROGS:%=$(FW_OUT)/obj/%.o)
firmware: $(FW_ELFS)

$(FW_OUT)/obj/lib/%.c.o: firmware/lib/%.c
	@mkdir -p $(@D)
	$(FW_CC) $(FW_CFLAGS) -c -o $@ $<

$(FW_OUT)/obj/lib/%.S.o: firmware/lib/%.S
	@mkdir -p $(@D)
	$(FW_CC) $(FW_CFLAGS) -c -o $@ $<

$(FW_OUT)/obj/%.o: firmware/%.c
	@mkdir -p $(@D)
	$(FW_CC) $(FW_CFLAGS) -c -o $@ $<

$(FW_OUT)/%.elf: $(FW_OUT)/obj/%.o $(FW_LIB_OBJS) firmware/firmware.ld
	$(FW_CC) $(FW_CFLAGS) $(FW_LDFLAGS) -o $@ $< $(FW_LIB_OBJS) -lgcc

-include $(FW_LIB_OBJS:.o=.d) $(FW_PROGS:%=$(FW_OUT)/obj/%.d)
