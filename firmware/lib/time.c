/*
 * TSC calibration against PIT channel 2 (Intel 8254 data sheet): mode 0 counts down once and
 * raises OUT at terminal count; OUT is read with the read-back command's status byte, which
 * KVM's in-kernel PIT answers without leaving the kernel. (Port 0x61 is not used: with
 * KVM_CREATE_PIT2 and no KVM_PIT_SPEAKER_DUMMY it reaches the VMM, which may not emulate it.)
 */
#include "fw.h"

#define PIT_HZ	       1193182ULL
#define PIT_CH2	       0x42
#define PIT_CMD	       0x43
#define PIT_CH2_MODE0  0xb0 /* channel 2, lo/hi byte, mode 0, binary */
#define PIT_RB_STATUS2 0xe8 /* read-back: status only, channel 2 */
#define PIT_STATUS_OUT 0x80
#define CALIB_MS       20
#define CALIB_GIVE_UP  4000000000ULL /* cycles (1-2 s): the PIT does not answer */
#define FALLBACK_HZ    3000000000ULL

static uint64_t tsc_hz;
static bool calibrated;

static bool pit_out2(void)
{
	outb(PIT_CMD, PIT_RB_STATUS2);
	return inb(PIT_CH2) & PIT_STATUS_OUT;
}

static uint64_t measure(void)
{
	uint16_t latch = (uint16_t)(PIT_HZ * CALIB_MS / 1000);
	uint64_t t0, t1;

	outb(PIT_CMD, PIT_CH2_MODE0);
	outb(PIT_CH2, latch & 0xff);
	outb(PIT_CH2, latch >> 8);
	t0 = rdtsc();
	while (!pit_out2()) {
		if (rdtsc() - t0 > CALIB_GIVE_UP) {
			printf("fw: PIT channel 2 does not count: TSC rate unknown\n");
			return 0;
		}
	}
	t1 = rdtsc();
	return (t1 - t0) * 1000 / CALIB_MS;
}

/*
 * Every port access is a VM exit, and a stalled one (the host descheduled us) only makes a
 * window look longer: keep the shortest of three.
 */
static uint64_t calibrate(void)
{
	uint64_t best = 0;

	for (int i = 0; i < 3; i++) {
		uint64_t hz = measure();

		if (!hz)
			return 0;
		if (!best || hz < best)
			best = hz;
	}
	return best;
}

uint64_t fw_tsc_hz(void)
{
	if (!calibrated) {
		tsc_hz = calibrate();
		calibrated = true;
	}
	return tsc_hz;
}

uint64_t fw_deadline(uint64_t ms)
{
	uint64_t hz = fw_tsc_hz();

	return rdtsc() + (hz ? hz : FALLBACK_HZ) / 1000 * ms;
}

uint64_t fw_cycles_to_us(uint64_t cycles)
{
	uint64_t hz = fw_tsc_hz();

	if (!hz)
		return 0;
	/* cycles * 1e6 / hz without overflowing for runs of many seconds */
	return cycles / hz * 1000000 + cycles % hz * 1000000 / hz;
}
