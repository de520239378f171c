/*
 * virtio 1.2 PCI transport, modern interface only (virtio 1.2 §4.1). Knows no device: it drives
 * a struct virtio_dev through its ops (devices/virtio.h). Layouts come from <linux/virtio_pci.h>.
 *
 * PCI identity: vendor 0x1af4, device 0x1040 + virtio device id, revision 1, subsystem
 * 0x1af4:<device id>, class by device type, INTA# for the no-MSI-X fallback.
 *
 * Everything lives in one 64-bit, non-prefetchable memory BAR (BAR 0, registers 0-1):
 *
 *   0x0000  common configuration   (VIRTIO_PCI_CAP_COMMON_CFG, 0x3c bytes incl. queue_reset)
 *   0x1000  ISR status             (VIRTIO_PCI_CAP_ISR_CFG, 1 byte, read clears)
 *   0x2000  device configuration   (VIRTIO_PCI_CAP_DEVICE_CFG, ops->config_size bytes)
 *   0x3000  notifications          (VIRTIO_PCI_CAP_NOTIFY_CFG, multiplier 4: queue q at 0x3000+4q)
 *   0x4000  MSI-X table            (max_queues + 1 vectors)
 *   0x5000  MSI-X PBA
 *   size 0x8000 (32 KiB)
 *
 * plus a VIRTIO_PCI_CAP_PCI_CFG window in configuration space.
 */
#ifndef DEVICES_VIRTIO_PCI_H
#define DEVICES_VIRTIO_PCI_H

#include <stdint.h>

struct loop;
struct pci_bus;
struct pci_dev;
struct state_in;
struct state_out;
struct virtio_dev;

#define VIRTIO_PCI_BAR		   0
#define VIRTIO_PCI_BAR_SIZE	   0x8000
#define VIRTIO_PCI_COMMON_OFF	   0x0000
#define VIRTIO_PCI_ISR_OFF	   0x1000
#define VIRTIO_PCI_DEVICE_OFF	   0x2000
#define VIRTIO_PCI_NOTIFY_OFF	   0x3000
#define VIRTIO_PCI_MSIX_TABLE_OFF  0x4000
#define VIRTIO_PCI_MSIX_PBA_OFF	   0x5000
#define VIRTIO_PCI_REGION_SIZE	   0x1000 /* each region above */
#define VIRTIO_PCI_NOTIFY_MULT	   4	  /* notify_off_multiplier */
#define VIRTIO_PCI_COMMON_CFG_SIZE 0x3c	  /* through queue_reset (VIRTIO_PCI_COMMON_Q_RESET + 2) */
#define VIRTIO_PCI_VENDOR	   0x1af4
#define VIRTIO_PCI_DEVICE_BASE	   0x1040 /* + virtio device id */

/**
 * virtio_pci_attach() - expose @dev on @bus as a modern virtio PCI function (virtio 1.2 §4.1):
 * allocates a slot, the BAR (placed in the MMIO window), the capabilities and MSI-X vectors,
 * and sets dev->transport / dev->transport_priv. @dev must be initialised (virtio_dev_init())
 * with ops->max_queues <= VIRTIO_MAX_QUEUES, max_queue_size a power of two <= 32768,
 * config_size <= 4096, and queue_notify set.
 *
 * @loop: where queue notifications are delivered: each queue gets an eventfd, registered as
 * an ioeventfd on its notify address while the BAR is decoded and watched by @loop, whose
 * callback calls ops->queue_notify() on the loop thread without dev->lock. Plain MMIO writes
 * to the notify area (no ioeventfd) signal the same eventfd. With @loop NULL (unit tests,
 * fuzzing) there are no eventfds: a notify write calls ops->queue_notify() synchronously on the
 * writing thread.
 *
 * Only before the guest runs. Returns 0, -EINVAL for bad ops limits, -ENOSPC (no slot or window
 * space), -ENOMEM, or -errno from eventfd()/loop_add_fd(); nothing is left attached on error.
 */
int virtio_pci_attach(struct pci_bus *bus, struct virtio_dev *dev, struct loop *loop);

/**
 * virtio_pci_detach() - undo virtio_pci_attach(): release ioeventfds, loop watches and eventfds,
 * remove the PCI function and clear dev->transport. Call with vCPUs and the loop stopped,
 * before pci_bus_destroy(). No-op when @dev is not attached.
 */
void virtio_pci_detach(struct virtio_dev *dev);

/** virtio_pci_dev() - the PCI function of an attached @dev (NULL when not attached). */
struct pci_dev *virtio_pci_dev(struct virtio_dev *dev);

/**
 * virtio_pci_save() - append the snapshot state of attached @dev (issue 14): the transport's
 * registers (feature selects, queue_select, msix_config, ISR, activation, deferred early kicks,
 * each queue's size/vector/ring addresses as the driver wrote them, the PCI_CFG window), then
 * virtio_dev_save(). Takes dev->lock. The PCI function's configuration space and MSI-X table
 * are the bus's (pci_bus_save()). Returns 0, -ENODEV (not attached) or -ENOMEM.
 */
int virtio_pci_save(struct virtio_dev *dev, struct state_out *o);

/**
 * virtio_pci_load() - load what virtio_pci_save() wrote into attached @dev, freshly reset, of
 * the same configuration (after pci_bus_load(), so BAR decoding, ioeventfds and MSI-X enable are
 * in place). @in must hold exactly this state (leftover bytes are an error). Validates: queue
 * sizes powers of two up to ops->max_queue_size, every vector inside the MSI-X table or
 * NO_VECTOR, ISR bits 0-1 only, early kicks of existing queues, activation only with DRIVER_OK;
 * then virtio_dev_load(). The INTx line follows the loaded ISR (pci_set_irq). On error the
 * transport registers and the device's common part are reset (not the device's own state: its
 * reset hook is not run, see virtio_dev_reset_common()). Call with the vCPUs and the loop not
 * running. Returns 0, -ENODEV (not attached) or -EINVAL.
 */
int virtio_pci_load(struct virtio_dev *dev, struct state_in *in);

/**
 * virtio_pci_restart_queues() - after every device is loaded: notify each ready queue of an
 * activated, healthy @dev once, as a guest kick would (through its eventfd on the loop, or
 * synchronously without a loop), so buffers the snapshot left in the avail rings, half-done
 * work and held chains are picked up. A spurious notification is harmless (virtio 1.2 §2.7.13).
 */
void virtio_pci_restart_queues(struct virtio_dev *dev);

#endif
