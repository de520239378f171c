/*
 * The machine: one VM (vm.h) plus the explicit table of devices it gets, the compressed memory
 * tier and the control socket, and the one place that brings them up and down.
 *
 * Device table (what a guest sees, in creation order):
 *   - serial console, 16550A at COM1 (0x3f8, IRQ 4)      devices/serial.h
 *   - i8042 reset line (0x60-0x64)                        devices/legacy.h
 *   - exit port (0x501)                                   devices/legacy.h
 *   - PCI host bridge, conf1 (0xcf8)                      devices/pci.h
 *   - virtio-balloon on PCI, with --balloon on            devices/virtio_balloon.h
 *   - virtio-rng on PCI, with --rng on (the default)       devices/virtio_rng.h
 *   - virtio-blk on PCI, one per --disk, in order (vda, vdb, ...: PCI slot order)
 *                                                         devices/virtio_blk.h
 *   - virtio-console on PCI, with --vconsole on: ports     devices/virtio_console.h
 *     0 "vmm.stdout" (-> stdout), 1 "vmm.stderr" (-> stderr), 2 "vmm.stdin" (<- stdin),
 *     3 "vmm.cmd" (<- cfg.cmd_in_fd: the command a guest booted with --await-command waits
 *     for, sent after a restore; docs/snapshot.md); the UART then takes no input (stdin
 *     belongs to the port)
 *
 * Start order (machine_create(), then machine_start()):
 *   1. vm_create(): the KVM VM, guest RAM and its memory slots, the event loop, the vCPUs (not
 *      running yet).
 *   2. console, i8042, exit port on the port bus.
 *   3. PCI bus and its devices (virtio-balloon, virtio-rng, the disks with their io_uring rings
 *      on the loop, virtio-console), the balloon's stats timer on the loop. The balloon's event
 *      thread may emit events from here on: vm_emit_event() drops them while no sink is set.
 *   4. compressed tier (its userfaultfd thread and reclaim worker), before any guest page is
 *      touched.
 *   5. control server, last: every object its backend reaches exists before a client connects.
 *   6. machine_start(): kernel or firmware loaded, MP table written, boot registers set, state
 *      running, vCPU threads started.
 *
 * Stop order (machine_destroy(), after loop_run() returned), with one rule: the control server
 * outlives every thread that can emit events (vCPUs through vm_stop() and vm_pause(), the
 * balloon's event thread, the compressed tier's worker), and each of them is joined before the
 * server is freed:
 *   1. vm_stop() and join the vCPU threads; then virtio-console drained: what the guest queued
 *      on its transmitqs before it stopped is written out (waiting while the readers take
 *      bytes, at most VCONSOLE_FLUSH_MS without progress), so the tail of a job's output is
 *      never lost.
 *   2. virtio devices detached from the transport, PCI bus freed; the disks freed (requests in
 *      flight waited for, rings and images closed); virtio-console freed.
 *   3. virtio-rng freed (its rate-limit timer deleted from the stopped loop), balloon freed (its
 *      event thread joined); m->balloon is NULL from here on, so a deferred reply completed
 *      later answers "no balloon" instead of reaching freed memory.
 *   4. compressed tier freed (worker and userfaultfd thread joined), after every thread that may
 *      fault on guest RAM is gone (vCPUs, balloon; the loop is not running). A memory.reclaim
 *      that ends now (stopped_because "stopped") posts its result to the still-live server.
 *   5. control server stopped: the last events are delivered, deferred replies completed (the
 *      reclaim's with its result), clients closed, the socket removed, the VM's event sink
 *      detached.
 *   6. console: buffered output written (at most SERIAL_FLUSH_MS), device freed, --console
 *      file closed.
 *   7. vm_destroy(): vCPU fds, guest RAM, the loop, the KVM fds.
 */
#ifndef VMM_MACHINE_H
#define VMM_MACHINE_H

#include <stdbool.h>
#include <stdint.h>

#include "../devices/legacy.h"
#include "../devices/virtio_balloon.h"
#include "../devices/virtio_rng.h"
#include "mem/policy.h"
#include "../devices/virtio_blk.h"
#include "vm.h"

struct serial;
struct pci_bus;
struct balloon;
struct vconsole;
struct memtier;
struct control;
struct blk;
struct snap_writer;
struct snap_image;

#define MACHINE_MAX_DISKS 8

enum console_mode { CONSOLE_STDIO, CONSOLE_NONE, CONSOLE_FILE };

/* The compressed tier (vmm/mem/memtier.h); the command line defaults to lz4. */
enum machine_compress { COMPRESS_OFF, COMPRESS_LZ4, COMPRESS_ZSTD };

struct machine_config {
	struct vm_config vm;  /* RAM, vCPUs, KSM, huge pages */
	const char *kernel;   /* bzImage or ELF vmlinux (PVH) */
	const char *initrd;   /* may be NULL */
	const char *cmdline;  /* full kernel command line; with firmware its argument string */
	const char *firmware; /* ELF firmware image instead of a kernel, or NULL */
	enum machine_compress compress;
	int compress_level;	  /* zstd level / lz4 acceleration, 0: default */
	uint64_t mem_limit_bytes; /* --mem-limit: resident guest RAM ceiling, 0: none */
	enum console_mode console;
	const char *console_path; /* CONSOLE_FILE: created mode 0600 */
	const char *control_path; /* control socket, or NULL */
	uint64_t control_idle_ms; /* its idle timeout: 0 the default, CTL_IDLE_NEVER none */
	struct balloon_config balloon;
	bool auto_balloon;	     /* --auto-balloon on: the memory autopilot (mem/policy.h) */
	struct policy_config policy; /* its options */
	struct rng_config rng;
	unsigned int nr_disks; /* --disk, in order; nr_queues is set by machine_create */
	struct blk_config disks[MACHINE_MAX_DISKS];
	bool vconsole;	    /* virtio-console carrying the job's stdin/stdout/stderr */
	bool await_command; /* --await-command: the guest's init waits for its command on vmm.cmd */
	int cmd_in_fd;	    /* host side of port vmm.cmd (not owned), or -1 */
	/*
	 * --debug corrupt-store=GPA (tests/kvm/memtier_corrupt.sh): the compressed tier damages the
	 * stored copy of the first page it compresses at or above this GPA, once, so the integrity
	 * check can be seen to stop the VM. Off unless debug_corrupt_store.
	 */
	bool debug_corrupt_store;
	uint64_t debug_corrupt_gpa;
};

struct machine {
	struct vm vm;
	struct machine_config cfg;
	struct legacy_ops legacy;    /* the i8042's callbacks (they point here) */
	struct legacy_ops exit_port; /* the exit port's (opaque: this machine) */
	/* The VM was stopped by the exit port (its first stop: not a crash or a signal). Set on
	 * a vCPU thread just after the stop: read it after machine_destroy() joined them. */
	bool guest_exited;
	struct serial *console; /* the UART (present with --console none too) */
	int console_fd;		/* --console file:PATH, else -1 */
	struct pci_bus *pci;
	struct balloon *balloon;	      /* NULL without --balloon */
	struct blk *disks[MACHINE_MAX_DISKS]; /* cfg.nr_disks of them */
	struct vconsole *vconsole;	      /* NULL without --vconsole on */
	int stats_timer;	 /* loop timer of the balloon's periodic stats, or -1 */
	struct rng *rng;	 /* NULL with --rng off */
	struct memtier *memtier; /* NULL with --compress off */
	struct control *control; /* NULL without --control */
	struct policy policy;	 /* the autopilot's state (loop thread only) */
	int mem_fd;	  /* the snapshot memory file guest RAM is mapped from (a restore), or -1 */
	int policy_timer; /* its loop timer, or 0 when off */
	int policy_watch_timer; /* its 100 ms watch (policy_watch()) while the balloon holds memory,
				   or -1 */
};

/**
 * machine_create() - steps 1-5 of the start order: the VM and its devices, the compressed tier
 * and the control socket (@cfg->control_path). @m: caller-owned, need not be zeroed; @cfg is
 * copied (its strings must outlive @m). On failure everything created so far is released.
 * Returns 0 or -errno with a message already printed (-EADDRINUSE: another VMM serves the
 * control socket path).
 */
int machine_create(struct machine *m, const struct machine_config *cfg);

/**
 * machine_start() - step 6: load the kernel (or firmware), write the MP table, set the boot vCPU's
 * registers and start every vCPU thread; the VM is then running. Returns 0 or -errno (message
 * printed; -ENOEXEC/-E2BIG/-ENOENT/-EACCES from the loaders, see boot/boot.h).
 */
int machine_start(struct machine *m);

/**
 * machine_run_vcpus() - the end of step 6 (machine_start() and a snapshot restore): the VM's
 * state becomes running and every vCPU thread starts from the registers it has. Returns 0 or
 * -errno (the VM is then stopped).
 */
int machine_run_vcpus(struct machine *m);

/**
 * machine_request_guest_shutdown() - ask the guest to shut down by itself: serial BREAK + SysRq
 * 'e' (SIGTERM to all tasks but init; our init then exits the VM), SysRq 'i' (SIGKILL) a second
 * later if the VM still runs. Does not wait. Used by the control socket's vm.shutdown, which
 * stops the VM hard with vm_stop() when the guest has not stopped within its timeout.
 * Returns 0 when a request was delivered, -ENOTSUP when there is no console or the VM stopped.
 */
int machine_request_guest_shutdown(struct machine *m);

/**
 * machine_policy_start() - with cfg.auto_balloon, start the memory autopilot's timer on the loop
 * (machine_policy.c; part of step 5, after the tier). Returns 0, or -EINVAL without a balloon
 * with stats, or -errno from the loop.
 */
int machine_policy_start(struct machine *m);

/**
 * machine_devices_quiesce() - snapshot step 1 for the devices (issue 14), with the VM paused
 * (vm_pause: vCPUs parked), on the event-loop thread: every virtio-blk request in flight is
 * completed into its used ring (blk_quiesce, at most 5 s per disk) and the balloon's event
 * thread has delivered what was pending (balloon_quiesce). Returns 0, or -ETIMEDOUT when a
 * disk still has requests in flight (do not save then; the VM may be resumed).
 */
int machine_devices_quiesce(struct machine *m);

/**
 * machine_devices_save() - snapshot step 2, after machine_devices_quiesce(), same thread and
 * VM still paused: add one section per device to @w: "dev.serial" (16550), "dev.pci" (conf1
 * latch, every function's configuration space and MSI-X table), then per virtio function its
 * transport, common and device state: "dev.balloon", "dev.rng", "dev.blk.N" (N: --disk index),
 * "dev.vconsole". The i8042 and exit port have no state. Returns 0 or -errno (one pr_err line
 * naming the section; -EBUSY: a disk was not quiesced, -ENOMEM).
 */
int machine_devices_save(struct machine *m, struct snap_writer *w);

/**
 * machine_devices_load() - restore: load the device sections of @img (parsed and checksummed)
 * into @m, created by machine_create() from the snapshot's configuration and not started (guest
 * RAM already holds the snapshot's memory, vCPUs and loop not running). Loads the UART, the PCI
 * bus (BARs decoded again, ioeventfds, MSI routes), then each virtio function, then notifies
 * every ready queue once (the work is done when the loop runs). The UART's and the INTx lines
 * are driven to their loaded levels (KVM_IRQ_LINE), so the kernel's line state matches the
 * devices; with the irqchip loaded before (snapshot.c), an asserted edge-triggered line (the
 * UART's IRQ 4) may give the guest one spurious interrupt, which its driver ignores. Every value is
 * validated: a missing, malformed or foreign section (or a "dev." section this machine has no
 * device for) gives one pr_err line naming it and -EINVAL; the machine must then be destroyed, not
 * started.
 */
int machine_devices_load(struct machine *m, const struct snap_image *img);

/**
 * machine_destroy() - the stop order above: stop the VM if needed, join every thread, free the
 * devices, the tier, the control server and the VM. Call after loop_run() returned (or before it
 * ever ran). Idempotent; machine_create() calls it itself when it fails.
 */
void machine_destroy(struct machine *m);

#endif
