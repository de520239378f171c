#include "machine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../devices/legacy.h"
#include "../devices/pci.h"
#include "../devices/serial.h"
#include "../devices/virtio_balloon.h"
#include "../devices/virtio_blk.h"
#include "../devices/virtio_console.h"
#include "../devices/virtio_pci.h"
#include "../devices/virtio_rng.h"
#include "boot/boot.h"
#include "control/protocol.h"
#include "control/vm_backend.h"
#include "loop.h"
#include "mem/memtier.h"
#include "util.h"
#include "vcpu.h"
#include "vm.h"

_Static_assert(PCI_MMIO_BASE == BOOT_PCI_MMIO_BASE && PCI_MMIO_SIZE == BOOT_PCI_MMIO_SIZE,
	       "the PCI window must match the e820 hole");

/* The legacy devices' and the console's callbacks into the VM. */
static void dev_stop(void *opaque, int status, const char *reason)
{
	vm_stop(opaque, status, reason);
}

/* The exit port (the init's vmm-exit): the one stop after which a writable --volume is written
 * back (vmm/volume.h). */
static void exit_port_stop(void *opaque, int status, const char *reason)
{
	struct machine *m = opaque;

	if (vm_stop(&m->vm, status, reason))
		m->guest_exited = true;
}

static bool dev_panicked(void *opaque)
{
	return vm_panicked(opaque);
}

static void console_irq(void *opaque, int level)
{
	vm_irq_line(opaque, SERIAL_COM1_IRQ, level);
}

static void console_panic(void *opaque)
{
	vm_set_panicked(opaque);
}

static int create_console(struct machine *m)
{
	const struct serial_ops ops = {.set_irq = console_irq,
				       .panic_seen = console_panic,
				       .stop = dev_stop,
				       .opaque = &m->vm};
	int out = -1, in = -1;

	switch (m->cfg.console) {
	case CONSOLE_STDIO:
		out = STDOUT_FILENO;
		in = m->cfg.vconsole ? -1 : STDIN_FILENO; /* else the port reads stdin */
		break;
	case CONSOLE_FILE:
		/* 0600: the guest's console may show anything it prints, secrets included. */
		m->console_fd =
			open(m->cfg.console_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (m->console_fd < 0) {
			int e = errno;

			pr_err("--console file:%s: %s", m->cfg.console_path, strerror(e));
			return -e;
		}
		out = m->console_fd;
		break;
	case CONSOLE_NONE:
		break;
	}
	m->console = serial_create(
		&m->vm.pio, m->vm.loop, &ops,
		&(struct serial_config){.out_fd = out,
					.in_fd = in,
					.escape = in >= 0 && isatty(in) && isatty(STDOUT_FILENO)});
	return m->console ? 0 : -ENOMEM;
}

static int create_legacy(struct machine *m)
{
	int ret;

	m->legacy =
		(struct legacy_ops){.stop = dev_stop, .panicked = dev_panicked, .opaque = &m->vm};
	m->exit_port = (struct legacy_ops){.stop = exit_port_stop, .panicked = NULL, .opaque = m};
	ret = i8042_create(&m->vm.pio, &m->legacy);
	if (!ret)
		ret = exit_port_create(&m->vm.pio, &m->exit_port);
	if (ret)
		pr_err("creating platform devices: %s", strerror(-ret));
	return ret;
}

/* The PCI bus's interrupt backend: thin wrappers around the VM's KVM calls. */
static int irq_line(void *o, uint32_t gsi, int level)
{
	return vm_irq_line(o, gsi, level);
}

static int alloc_gsi(void *o)
{
	return vm_alloc_gsi(o);
}

static int set_msi_route(void *o, uint32_t gsi, uint64_t addr, uint32_t data, bool enable)
{
	return vm_set_msi_route(o, gsi, addr, data, enable);
}

static int irqfd(void *o, int efd, uint32_t gsi, bool assign)
{
	return vm_irqfd(o, efd, gsi, assign);
}

static int signal_msi(void *o, uint64_t addr, uint32_t data)
{
	return vm_signal_msi(o, addr, data);
}

static int ioeventfd(void *o, uint64_t addr, uint32_t len, int efd, bool assign)
{
	return vm_ioeventfd(o, addr, len, efd, true, assign);
}

static void balloon_event(void *opaque, const char *event, const char *data_json)
{
	vm_emit_event(opaque, event, data_json);
}

static void stats_tick(void *opaque)
{
	balloon_stats_tick(opaque);
}

static int create_balloon(struct machine *m)
{
	int ret;

	m->balloon = balloon_create(&m->vm.gm, &m->cfg.balloon);
	if (!m->balloon)
		return -ENOMEM;
	ret = virtio_pci_attach(m->pci, balloon_virtio_dev(m->balloon), m->vm.loop);
	if (ret) {
		pr_err("attaching virtio-balloon: %s", strerror(-ret));
		return ret;
	}
	balloon_set_event_sink(m->balloon, balloon_event, &m->vm);
	if (m->cfg.balloon.stats && m->cfg.balloon.stats_period_s) {
		m->stats_timer = loop_add_timer(m->vm.loop, m->cfg.balloon.stats_period_s * 1000ULL,
						true, stats_tick, m->balloon);
		if (m->stats_timer < 0)
			return m->stats_timer;
	}
	return 0;
}

static int create_rng(struct machine *m)
{
	int ret;

	m->rng = rng_create(&m->vm.gm, &m->cfg.rng, m->vm.loop);
	if (!m->rng)
		return -errno;
	ret = virtio_pci_attach(m->pci, rng_virtio_dev(m->rng), m->vm.loop);
	if (ret)
		pr_err("attaching virtio-rng: %s", strerror(-ret));
	return ret;
}

/* One virtio-blk per --disk, MQ with one queue per vCPU (at most VIRTIO_MAX_QUEUES). */
static int create_disks(struct machine *m)
{
	int ret;

	for (unsigned int i = 0; i < m->cfg.nr_disks; i++) {
		struct blk_config dc = m->cfg.disks[i];

		dc.nr_queues = MIN(m->vm.nr_vcpus, (unsigned int)VIRTIO_MAX_QUEUES);
		ret = blk_create(&m->vm.gm, m->vm.loop, &dc, &m->disks[i]);
		if (ret)
			return ret; /* blk_create said why */
		ret = virtio_pci_attach(m->pci, blk_virtio_dev(m->disks[i]), m->vm.loop);
		if (ret) {
			pr_err("attaching virtio-blk for %s: %s", dc.path, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* The job's stdio: the guest's init finds the ports by name (guest-kernel-config/initramfs). */
static int create_vconsole(struct machine *m)
{
	const struct vconsole_config cfg = {
		.nr_ports = 4,
		.ports = {{.name = "vmm.stdout", .out_fd = STDOUT_FILENO, .in_fd = -1},
			  {.name = "vmm.stderr", .out_fd = STDERR_FILENO, .in_fd = -1},
			  {.name = "vmm.stdin", .out_fd = -1, .in_fd = STDIN_FILENO},
			  {.name = "vmm.cmd",
			   .out_fd = -1,
			   .in_fd = m->cfg.await_command ? m->cfg.cmd_in_fd : -1}},
	};
	int ret;

	m->vconsole = vconsole_create(&m->vm.gm, m->vm.loop, &cfg);
	if (!m->vconsole)
		return -errno;
	ret = virtio_pci_attach(m->pci, vconsole_virtio_dev(m->vconsole), m->vm.loop);
	if (ret)
		pr_err("attaching virtio-console: %s", strerror(-ret));
	return ret;
}

static int create_pci(struct machine *m)
{
	struct pci_irq_ops ops = {
		.opaque = &m->vm,
		.irq_line = irq_line,
		.alloc_gsi = alloc_gsi,
		.set_msi_route = set_msi_route,
		.irqfd = irqfd,
		.signal_msi = signal_msi,
		.ioeventfd = ioeventfd,
	};
	int ret;

	ret = pci_bus_create(&m->vm.pio, &m->vm.mmio, &ops, &m->pci);
	if (ret) {
		pr_err("creating the PCI bus: %s", strerror(-ret));
		return ret;
	}
	/*
	 * Every config space access is a write of CONFIG_ADDRESS (0xCF8) and an access to
	 * CONFIG_DATA: let KVM queue the address writes (the data access, an exit, performs them
	 * first), half of the config exits of a boot (1674 port exits of 2243 to userspace).
	 */
	ret = vm_coalesce_pio(&m->vm, PCI_CONF1_PORT, 4);
	if (ret && ret != -EOPNOTSUPP)
		pr_warn("coalescing PCI CONFIG_ADDRESS writes: %s", strerror(-ret));
	ret = 0;
	/* The device table: every PCI device this machine can have. */
	if (m->cfg.balloon.enabled)
		ret = create_balloon(m);
	if (!ret && m->cfg.rng.enabled)
		ret = create_rng(m);
	if (!ret)
		ret = create_disks(m);
	if (!ret && m->cfg.vconsole)
		ret = create_vconsole(m);
	return ret;
}

/* The compressed tier's glue: an integrity failure stops the VM; a reclaim result is an event. */
static void memtier_fatal(void *opaque, const char *msg)
{
	vm_stop(opaque, 1, msg);
}

static void memtier_done(void *opaque, const struct memtier_result *r)
{
	struct json_object *o = ctl_reclaim_json(r);

	if (o)
		vm_emit_event(opaque, "memory.reclaim",
			      json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
}

static int create_memtier(struct machine *m)
{
	struct memtier_config mc = {
		.algo = m->cfg.compress == COMPRESS_ZSTD ? CS_ALGO_ZSTD : CS_ALGO_LZ4,
		.level = m->cfg.compress_level,
		.mem_limit_bytes = m->cfg.mem_limit_bytes,
		.vm_fd = m->vm.vm_fd,
		.test_corrupt = m->cfg.debug_corrupt_store,
		.test_corrupt_gpa = m->cfg.debug_corrupt_gpa,
		.fatal = memtier_fatal,
		.done = memtier_done,
		.opaque = &m->vm,
	};
	int ret;

	if (m->cfg.compress == COMPRESS_OFF)
		return 0;
	ret = memtier_create(&m->vm.gm, &mc, &m->memtier);
	if (ret && m->cfg.mem_limit_bytes) {
		pr_err("--mem-limit needs the compressed tier: %s", strerror(-ret));
		return ret;
	}
	if (ret)
		pr_warn("compressed tier unavailable (%s): continuing without it", strerror(-ret));
	return 0;
}

int machine_create(struct machine *m, const struct machine_config *cfg)
{
	int ret;

	memset(m, 0, sizeof(*m));
	m->cfg = *cfg;
	m->console_fd = -1;
	m->stats_timer = -1;
	m->mem_fd = -1;
	ret = vm_create(&m->vm, &cfg->vm);
	if (ret)
		return ret;	 /* vm_create() released what it made */
	ret = create_console(m); /* says what is wrong with --console itself */
	if (!ret)
		ret = create_legacy(m);
	if (!ret)
		ret = create_pci(m);
	if (!ret)
		ret = create_memtier(m);
	if (!ret)
		ret = machine_policy_start(m);
	if (!ret && m->cfg.control_path)
		ret = control_start(m, m->cfg.control_path);
	if (ret)
		machine_destroy(m);
	return ret;
}

/* SysRq 'i' (SIGKILL to all tasks) if SIGTERM was not enough. */
static void shutdown_kill(void *opaque)
{
	struct machine *m = opaque;

	if (vm_get_state(&m->vm) != VM_STOPPED && m->console)
		serial_send_sysrq(m->console, 'i');
}

int machine_request_guest_shutdown(struct machine *m)
{
	if (!m->console || vm_get_state(&m->vm) == VM_STOPPED)
		return -ENOTSUP;
	/* Serial BREAK + SysRq 'e': SIGTERM to every task but init; our init then exits the VM
	 * with the command's status. Shells ignore SIGTERM, hence SIGKILL a second later. */
	serial_send_sysrq(m->console, 'e');
	loop_add_timer(m->vm.loop, 1000, false, shutdown_kill, m);
	return 0;
}

static int write_mptable(struct machine *m)
{
	struct pci_intx_route routes[PCI_MAX_SLOTS];
	struct mp_pci_irq irqs[PCI_MAX_SLOTS];
	unsigned int n = m->pci ? pci_intx_routes(m->pci, routes, PCI_MAX_SLOTS) : 0;

	n = MIN(n, (unsigned int)PCI_MAX_SLOTS);
	for (unsigned int i = 0; i < n; i++)
		irqs[i] = (struct mp_pci_irq){routes[i].slot, routes[i].pin, routes[i].gsi};
	return boot_mptable(&m->vm.gm, m->vm.nr_vcpus, irqs, n);
}

int machine_start(struct machine *m)
{
	struct vm *vm = &m->vm;
	struct boot_entry entry;
	int ret;

	if (m->cfg.firmware)
		ret = boot_firmware(&vm->gm, m->cfg.firmware, m->cfg.cmdline, &entry);
	else
		ret = boot_linux(&vm->gm, m->cfg.kernel, m->cfg.initrd, m->cfg.cmdline, &entry);
	if (ret)
		return ret;
	ret = write_mptable(m);
	if (ret) {
		pr_err("writing the MP table: %s", strerror(-ret));
		return ret;
	}
	ret = vcpu_set_boot_state(&vm->vcpus[0], &entry);
	if (ret) {
		pr_err("setting boot registers: %s", strerror(-ret));
		return ret;
	}
	return machine_run_vcpus(m);
}

int machine_run_vcpus(struct machine *m)
{
	struct vm *vm = &m->vm;
	int ret;

	pthread_mutex_lock(&vm->lock);
	vm->state = VM_RUNNING;
	vm->start_ns = now_ns();
	pthread_mutex_unlock(&vm->lock);
	vm_emit_event(vm, "vm.state", "{\"state\":\"running\"}");
	for (unsigned int i = 0; i < vm->nr_vcpus; i++) {
		ret = vcpu_start(&vm->vcpus[i]);
		if (ret) {
			pr_err("starting vCPU %u: %s", i, strerror(-ret));
			vm_stop(vm, 2, "vCPU thread creation failed");
			return ret;
		}
	}
	return 0;
}

void machine_destroy(struct machine *m)
{
	struct vm *vm = &m->vm;

	/* 1. No vCPU runs (or emits events) any more. */
	vm_stop(vm, vm->exit_status, "shutting down");
	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	if (m->vconsole && vconsole_drain(m->vconsole, VCONSOLE_FLUSH_MS))
		pr_warn("virtio-console: a reader took no output for %u ms: the rest is dropped",
			VCONSOLE_FLUSH_MS);
	/* 2-3. The transport, then the devices (the balloon with its event thread). */
	if (m->balloon)
		virtio_pci_detach(balloon_virtio_dev(m->balloon));
	if (m->rng)
		virtio_pci_detach(rng_virtio_dev(m->rng));
	for (unsigned int i = 0; i < MACHINE_MAX_DISKS; i++)
		if (m->disks[i])
			virtio_pci_detach(blk_virtio_dev(m->disks[i]));
	if (m->vconsole)
		virtio_pci_detach(vconsole_virtio_dev(m->vconsole));
	pci_bus_destroy(m->pci);
	m->pci = NULL;
	for (unsigned int i = 0; i < MACHINE_MAX_DISKS; i++) {
		blk_destroy(m->disks[i]);
		m->disks[i] = NULL;
	}
	vconsole_destroy(m->vconsole);
	m->vconsole = NULL;
	balloon_destroy(m->balloon);
	m->balloon = NULL;
	rng_destroy(m->rng); /* its timer is on the loop, which no longer runs */
	m->rng = NULL;
	/* 4. After every thread that may fault on guest RAM; a reclaim ending now still reaches
	 * the control server, which is alive until step 5. */
	memtier_destroy(m->memtier);
	m->memtier = NULL;
	/* 5. No thread is left that could post an event. */
	control_stop(m);
	/* 6. */
	serial_destroy(m->console);
	m->console = NULL;
	if (m->console_fd >= 0)
		close(m->console_fd);
	m->console_fd = -1;
	/* 7. */
	vm_destroy(vm);
	if (m->mem_fd >= 0)
		close(m->mem_fd);
	m->mem_fd = -1;
}
