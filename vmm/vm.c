#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "loop.h"
#include "util.h"
#include "vcpu.h"

#define KVM_TSS_ADDR	 0xfffbd000ULL
#define KVM_IDENTITY_MAP 0xfffbc000ULL
#define IOAPIC_PINS	 24

static const char *const state_names[] = {"created", "running", "paused", "stopped"};

const char *vm_state_name(enum vm_state s)
{
	return s < ARRAY_SIZE(state_names) ? state_names[s] : "unknown";
}

static struct kvm_irq_routing *routing(struct vm *vm)
{
	return vm->routing;
}

/* KVM_CREATE_IRQCHIP's default table, rebuilt so MSI routes can be appended to it. */
static void init_routing(struct vm *vm)
{
	struct kvm_irq_routing *r = routing(vm);
	unsigned int n = 0;

	for (uint32_t gsi = 0; gsi < IOAPIC_PINS; gsi++) {
		if (gsi < 16 && gsi != 2) {
			r->entries[n++] = (struct kvm_irq_routing_entry){
				.gsi = gsi,
				.type = KVM_IRQ_ROUTING_IRQCHIP,
				.u.irqchip = {gsi < 8 ? KVM_IRQCHIP_PIC_MASTER
						      : KVM_IRQCHIP_PIC_SLAVE,
					      gsi % 8},
			};
		}
		r->entries[n++] = (struct kvm_irq_routing_entry){
			.gsi = gsi,
			.type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = {KVM_IRQCHIP_IOAPIC, gsi},
		};
	}
	r->nr = n;
	vm->next_gsi = IOAPIC_PINS;
}

static void destroy_vcpus(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	free(vm->vcpus);
	vm->vcpus = NULL;
	vm->nr_vcpus = 0;
}

static int map_memory(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->gm.nr_regions; i++) {
		struct gm_region *reg = &vm->gm.regions[i];
		struct kvm_userspace_memory_region mr = {
			.slot = i,
			.guest_phys_addr = reg->gpa,
			.memory_size = reg->size,
			.userspace_addr = (uintptr_t)reg->hva,
		};

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &mr) < 0) {
			int e = errno;

			pr_err("KVM_SET_USER_MEMORY_REGION slot %u: %s", i, strerror(e));
			return -e;
		}
	}
	return 0;
}

static int open_kvm(struct vm *vm)
{
	int ver;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		int e = errno;

		if (e == ENOENT)
			pr_err("/dev/kvm does not exist: load the kvm module (kvm_intel or "
			       "kvm_amd) "
			       "or run on a host with hardware virtualization");
		else if (e == EACCES || e == EPERM)
			pr_err("no permission to open /dev/kvm: run as root or add your user to "
			       "the 'kvm' group");
		else
			pr_err("cannot open /dev/kvm: %s", strerror(e));
		return -e;
	}
	ver = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (ver != KVM_API_VERSION) {
		pr_err("KVM API version %d, expected %d", ver, KVM_API_VERSION);
		return -EINVAL;
	}
	return 0;
}

/* The host's vCPU limit, the kvm_run mapping size and the VM fd. */
static int create_vm_fd(struct vm *vm, const struct vm_config *cfg)
{
	int max_vcpus, e;

	max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max_vcpus <= 0)
		max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max_vcpus > 0 && cfg->nr_vcpus > (unsigned int)max_vcpus) {
		pr_err("--cpus %u is above this host's KVM limit of %d vCPUs", cfg->nr_vcpus,
		       max_vcpus);
		return -EINVAL;
	}
	vm->vcpu_mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->vcpu_mmap_size <= 0) {
		e = vm->vcpu_mmap_size < 0 ? errno : EINVAL;
		pr_err("KVM_GET_VCPU_MMAP_SIZE: %s", strerror(e));
		return -e;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		e = errno;
		pr_err("KVM_CREATE_VM: %s", strerror(e));
		return -e;
	}
	return 0;
}

/* TSS and identity map below the IOAPIC, the in-kernel irqchip and PIT. */
static int create_irqchip(struct vm *vm)
{
	struct kvm_pit_config pit = {.flags = 0};
	int e;

	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &(uint64_t){KVM_IDENTITY_MAP}) < 0) {
		e = errno;
		pr_err("KVM_SET_TSS_ADDR: %s", strerror(e));
		return -e;
	}
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0 ||
	    ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
		e = errno;
		pr_err("creating the in-kernel irqchip/PIT: %s", strerror(e));
		return -e;
	}
	vm->routing = calloc(1, sizeof(struct kvm_irq_routing) +
					VM_MAX_GSI * 2 * sizeof(struct kvm_irq_routing_entry));
	if (!vm->routing)
		return -ENOMEM;
	init_routing(vm);
	return 0;
}

static int create_vcpus(struct vm *vm, unsigned int nr)
{
	int ret;

	vm->vcpus = calloc(nr, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return -ENOMEM;
	/* Every vCPU's CPUID names the count; vcpu_destroy() is a no-op on one never created. */
	vm->nr_vcpus = nr;
	for (unsigned int i = 0; i < nr; i++)
		vm->vcpus[i].fd = vm->vcpus[i].stats_fd = -1;
	for (unsigned int i = 0; i < nr; i++) {
		ret = vcpu_create(vm, &vm->vcpus[i], i);
		if (ret)
			return ret;
	}
	return 0;
}

int vm_create(struct vm *vm, const struct vm_config *cfg)
{
	int ret;

	memset(vm, 0, sizeof(*vm));
	vm->cfg = *cfg;
	vm->kvm_fd = vm->vm_fd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->coalesced_lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	bus_init(&vm->pio, "pio");
	bus_init(&vm->mmio, "mmio");

	ret = open_kvm(vm);
	if (ret)
		goto err_kvm;
	ret = create_vm_fd(vm, cfg);
	if (ret)
		goto err_kvm;
	ret = create_irqchip(vm);
	if (ret)
		goto err_vm_fd;
	ret = gm_init(&vm->gm, cfg->mem_bytes,
		      (cfg->merge ? GM_MERGE : 0) | (cfg->hugepages ? GM_HUGEPAGES : 0));
	if (ret) {
		pr_err("cannot map %llu MiB of guest RAM: %s",
		       (unsigned long long)(cfg->mem_bytes / MiB), strerror(-ret));
		goto err_routing;
	}
	ret = map_memory(vm);
	if (ret)
		goto err_gm;
	vm->loop = loop_create();
	if (!vm->loop) {
		ret = -errno;
		pr_err("creating the event loop: %s", strerror(-ret));
		goto err_gm;
	}
	ret = create_vcpus(vm, cfg->nr_vcpus);
	if (ret)
		goto err_vcpus;
	return 0;

err_vcpus:
	destroy_vcpus(vm);
	loop_destroy(vm->loop);
	vm->loop = NULL;
err_gm:
	gm_destroy(&vm->gm);
err_routing:
	free(vm->routing);
	vm->routing = NULL;
err_vm_fd:
	close(vm->vm_fd);
	vm->vm_fd = -1;
err_kvm:
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->kvm_fd = -1;
	return ret;
}

void vm_destroy(struct vm *vm)
{
	destroy_vcpus(vm);
	gm_destroy(&vm->gm);
	if (vm->loop)
		loop_destroy(vm->loop);
	vm->loop = NULL;
	free(vm->routing);
	vm->routing = NULL;
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->vm_fd = vm->kvm_fd = -1;
}

static void kick_all(struct vm *vm)
{
	for (unsigned int i = 0; i < vm->nr_vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
}

bool vm_stop(struct vm *vm, int status, const char *reason)
{
	bool first;

	pthread_mutex_lock(&vm->lock);
	first = vm->state != VM_STOPPED;
	if (first) {
		vm->state = VM_STOPPED;
		vm->exit_status = status;
		snprintf(vm->exit_reason, sizeof(vm->exit_reason), "%s", reason);
		pthread_cond_broadcast(&vm->cond);
	}
	pthread_mutex_unlock(&vm->lock);
	if (!first)
		return false;
	pr_info("VM stopped (status %d): %s", status, reason);
	{
		char data[320];

		snprintf(data, sizeof(data), "{\"status\":%d}", status);
		vm_emit_event(vm, "guest.exit", data);
		vm_emit_event(vm, "vm.state", "{\"state\":\"stopped\"}");
	}
	kick_all(vm);
	if (vm->loop)
		loop_stop(vm->loop);
	return true;
}

enum vm_state vm_get_state(struct vm *vm)
{
	enum vm_state s;

	pthread_mutex_lock(&vm->lock);
	s = vm->state;
	pthread_mutex_unlock(&vm->lock);
	return s;
}

void vm_set_panicked(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->guest_panicked = true;
	pthread_mutex_unlock(&vm->lock);
}

bool vm_panicked(struct vm *vm)
{
	bool p;

	pthread_mutex_lock(&vm->lock);
	p = vm->guest_panicked;
	pthread_mutex_unlock(&vm->lock);
	return p;
}

int vm_pause(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->state != VM_RUNNING) {
		pthread_mutex_unlock(&vm->lock);
		return -EBUSY;
	}
	vm->pause_req = true;
	pthread_mutex_unlock(&vm->lock);
	kick_all(vm);
	pthread_mutex_lock(&vm->lock);
	while (vm->parked < vm->nr_vcpus && vm->state == VM_RUNNING)
		pthread_cond_wait(&vm->cond, &vm->lock);
	if (vm->state == VM_RUNNING)
		vm->state = VM_PAUSED;
	pthread_mutex_unlock(&vm->lock);
	vm_emit_event(vm, "vm.state", "{\"state\":\"paused\"}");
	return 0;
}

int vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->state != VM_PAUSED) {
		pthread_mutex_unlock(&vm->lock);
		return -EBUSY;
	}
	vm->pause_req = false;
	vm->state = VM_RUNNING;
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	vm_emit_event(vm, "vm.state", "{\"state\":\"running\"}");
	return 0;
}

void vm_emit_event(struct vm *vm, const char *event, const char *data_json)
{
	if (vm->event_fn)
		vm->event_fn(vm->event_opaque, event, data_json);
}

int vm_irq_line(struct vm *vm, uint32_t irq, int level)
{
	struct kvm_irq_level l = {.irq = irq, .level = level};

	return ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0 ? -errno : 0;
}

int vm_alloc_gsi(struct vm *vm)
{
	int gsi = -ENOSPC;

	pthread_mutex_lock(&vm->lock);
	if (vm->next_gsi < VM_MAX_GSI)
		gsi = vm->next_gsi++;
	pthread_mutex_unlock(&vm->lock);
	return gsi;
}

int vm_set_msi_route(struct vm *vm, uint32_t gsi, uint64_t addr, uint32_t data, bool enable)
{
	struct kvm_irq_routing *r = routing(vm);
	unsigned int i;
	int ret = 0;

	if (gsi < IOAPIC_PINS || gsi >= VM_MAX_GSI)
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	for (i = 0; i < r->nr; i++)
		if (r->entries[i].gsi == gsi)
			break;
	if (enable) {
		r->entries[i] = (struct kvm_irq_routing_entry){
			.gsi = gsi,
			.type = KVM_IRQ_ROUTING_MSI,
			.u.msi = {.address_lo = (uint32_t)addr,
				  .address_hi = (uint32_t)(addr >> 32),
				  .data = data},
		};
		if (i == r->nr)
			r->nr++;
	} else if (i < r->nr) {
		r->entries[i] = r->entries[--r->nr];
	}
	if (ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, r) < 0)
		ret = -errno;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

int vm_signal_msi(struct vm *vm, uint64_t addr, uint32_t data)
{
	struct kvm_msi msi = {
		.address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32), .data = data};

	return ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi) < 0 ? -errno : 0;
}

int vm_irqfd(struct vm *vm, int efd, uint32_t gsi, bool assign)
{
	struct kvm_irqfd irqfd = {
		.fd = efd, .gsi = gsi, .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN};

	return ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0 ? -errno : 0;
}

int vm_coalesce_pio(struct vm *vm, uint16_t port, uint32_t len)
{
	struct kvm_coalesced_mmio_zone z = {.addr = port, .size = len, .pio = 1};
	long page = sysconf(_SC_PAGESIZE);
	int off;

	/* KVM_CAP_COALESCED_MMIO is the ring's page offset in the kvm_run mapping. */
	off = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_MMIO);
	if (off <= 0 || ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_COALESCED_PIO) <= 0 ||
	    page <= 0 || (long)(off + 1) * page > vm->vcpu_mmap_size)
		return -EOPNOTSUPP;
	if (ioctl(vm->vm_fd, KVM_REGISTER_COALESCED_MMIO, &z) < 0)
		return -errno;
	vm->coalesced_page = (unsigned int)off;
	return 0;
}

int vm_ioeventfd(struct vm *vm, uint64_t addr, uint32_t len, int efd, bool mmio, bool assign)
{
	struct kvm_ioeventfd io = {.addr = addr, .len = len, .fd = efd};

	if (!mmio)
		io.flags |= KVM_IOEVENTFD_FLAG_PIO;
	if (!assign)
		io.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
	return ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}
