/*
 * A virtio-console driver for unit tests (test_console.c, test_console_hostile.c): the device with
 * three ports on pipes, the fake driver's rings for its 8 queues, and the control and data paths
 * as Linux's drivers/char/virtio_console.c uses them.
 */
#ifndef TESTS_UNIT_CONSOLE_DRIVER_H
#define TESTS_UNIT_CONSOLE_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/virtio_console.h>

#include "../../devices/virtio.h"
#include "../../devices/virtio_console.h"
#include "../../vmm/util.h"
#include "fake_driver.h"

#define RAM	  (64 * MiB)
#define RING_BASE 0x100000ULL /* queue i's rings at RING_BASE + i * 0x10000 */
#define CTRL_BUF  0x200000ULL /* control receive buffers: one 4 KiB page per descriptor head */
#define DATA_BUF  0x400000ULL /* data buffers, bump-allocated */
#define F(bit)	  (1ULL << (bit))
#define F_MP	  F(VIRTIO_CONSOLE_F_MULTIPORT)
#define NQ	  8
#define BAD_ID	  VIRTIO_CONSOLE_BAD_ID

extern struct guest_mem gm;
extern struct loop *loop;
extern struct vconsole *vc;
extern struct virtio_dev *dev;
extern struct fake_vq q[NQ];
extern int out_pipe[2], err_pipe[2], in_pipe[2];

struct msg {
	uint32_t id;
	uint16_t event, value;
	char data[128];
};

/** kick() - the driver notifies queue @qidx (the device runs it synchronously). */
void kick(unsigned int qidx);
/** data_buf() - @len bytes of guest RAM for a buffer (bump allocator; fails the test when full). */
uint64_t data_buf(uint32_t len);
/**
 * setup_dev() - the device with ports vmm.stdout (out_pipe), vmm.stderr (err_pipe), vmm.stdin
 * (@in_fd, or in_pipe when -1); port 0 a console port with @console0; @features negotiated, all 8
 * queues enabled (VCONSOLE_QUEUE_SIZE entries), DRIVER_OK.
 */
void setup_dev(uint64_t features, int in_fd, bool console0);
/** teardown() - free everything setup_dev() made (the suites' .fini). */
void teardown(void);
/** stats() - vconsole_get_stats() by value. */
struct vconsole_stats stats(void);
/** post_ctrl_bufs() - @n device-writable @len-byte control receive buffers, then a kick. */
void post_ctrl_bufs(unsigned int n, uint32_t len);
/** send_ctrl_raw() - @len bytes as one control message; fails unless the device consumed it. */
void send_ctrl_raw(const void *msg, uint32_t len);
/** send_ctrl() - one struct virtio_console_control (id, event, value). */
void send_ctrl(uint32_t id, uint16_t event, uint16_t value);
/** recv_ctrl() - the next message the device sent on the control receiveq, if any. */
bool recv_ctrl(struct msg *m);
/** expect_msg() - the next message is (@id, @event, @value[, @data]); else the test fails. */
void expect_msg(uint32_t id, uint16_t event, uint16_t value, const char *data);
/** expect_no_msg() - the device sent nothing more. */
void expect_no_msg(void);
/** handshake() - DEVICE_READY, PORT_READY for each port, with every message checked. */
void handshake(void);
/** pattern() - @n deterministic bytes from @seed. */
void pattern(uint8_t *p, size_t n, uint64_t seed);
/** guest_write() - a write(2) on @port: one device-readable buffer, then a kick. Returns the head.
 */
uint16_t guest_write(unsigned int port, const void *data, uint32_t len);
/** used_count() - transmit buffers returned on @qidx since the last call (each with length 0). */
unsigned int used_count(unsigned int qidx);
/** read_pipe() - what a non-blocking read of @fd gives now (0 when nothing). */
size_t read_pipe(int fd, uint8_t *dst, size_t cap);
/** post_rx_bufs() - @n device-writable @len-byte buffers on vmm.stdin's receiveq, then a kick. */
void post_rx_bufs(unsigned int n, uint32_t len);
/** rx_take() - the bytes of the receive buffers the device returned, in order. */
size_t rx_take(uint8_t *dst, size_t cap);

#endif
