/* Snapshot state of PCI bus 0 (pci.h: pci_bus_save/load). */
#include <errno.h>
#include <linux/pci_regs.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../vmm/state.h"
#include "../vmm/util.h"
#include "pci.h"
#include "pci_priv.h"

#define BARS_LO	 PCI_BASE_ADDRESS_0
#define BARS_END (PCI_BASE_ADDRESS_0 + 4 * PCI_STD_NUM_BARS)

/* One function as read from the state, validated before anything is applied. */
struct fn_state {
	struct pci_dev *d;
	uint8_t cfg[PCI_CFG_SPACE_SIZE];
	struct msix_vec *vec; /* d->msix_nr entries (w, pending, routed, r_addr, r_data) */
};

static void fn_save(struct pci_dev *d, struct state_out *o)
{
	state_put_u8(o, (uint8_t)d->slot);
	state_put(o, d->cfg, sizeof(d->cfg));
	pthread_mutex_lock(&d->irq_lock);
	state_put_u16(o, (uint16_t)d->msix_nr);
	for (unsigned int n = 0; n < d->msix_nr; n++) {
		const struct msix_vec *v = &d->vec[n];

		for (int w = 0; w < 4; w++)
			state_put_u32(o, v->w[w]);
		state_put_bool(o, v->pending);
		state_put_bool(o, v->routed);
		state_put_u64(o, v->routed ? v->r_addr : 0);
		state_put_u32(o, v->routed ? v->r_data : 0);
	}
	pthread_mutex_unlock(&d->irq_lock);
}

int pci_bus_save(struct pci_bus *pci, struct state_out *o)
{
	unsigned int n = 0;

	pthread_mutex_lock(&pci->lock);
	state_put_u32(o, pci->conf_addr);
	for (unsigned int s = 0; s < PCI_MAX_SLOTS; s++)
		n += pci->devs[s] != NULL;
	state_put_u8(o, (uint8_t)n);
	for (unsigned int s = 0; s < PCI_MAX_SLOTS; s++)
		if (pci->devs[s])
			fn_save(pci->devs[s], o);
	pthread_mutex_unlock(&pci->lock);
	return state_out_error(o);
}

/* Read-only bytes must match: the snapshot is of this very device (ids, class, capabilities). */
static bool same_device(const struct pci_dev *d, const uint8_t *cfg)
{
	for (unsigned int o = 0; o < PCI_CFG_SPACE_SIZE; o++) {
		if (o >= BARS_LO && o < BARS_END)
			continue; /* masked by the BAR sizes when applied */
		if ((cfg[o] ^ d->cfg[o]) & ~d->wmask[o])
			return false;
	}
	return true;
}

static int fn_load(struct pci_dev *d, struct fn_state *f, struct state_in *in)
{
	f->d = d;
	state_get(in, f->cfg, sizeof(f->cfg));
	if (state_get_u16(in) != d->msix_nr)
		return state_fail(in, "MSI-X table size differs");
	if (state_in_error(in))
		return state_in_error(in);
	if (!same_device(d, f->cfg))
		return state_fail(in, "read-only configuration differs: another device");
	f->vec = d->msix_nr ? calloc(d->msix_nr, sizeof(*f->vec)) : NULL;
	if (d->msix_nr && !f->vec)
		return state_fail(in, "out of memory");
	for (unsigned int n = 0; n < d->msix_nr; n++) {
		struct msix_vec *v = &f->vec[n];

		for (int w = 0; w < 4; w++)
			v->w[w] = state_get_u32(in);
		v->pending = state_get_bool(in);
		v->routed = state_get_bool(in);
		v->r_addr = state_get_u64(in);
		v->r_data = state_get_u32(in);
		if (state_in_error(in))
			return state_in_error(in);
		if (v->w[3] & ~PCI_MSIX_ENTRY_CTRL_MASKBIT)
			return state_fail(in, "MSI-X vector control has reserved bits");
		if (v->routed && ((uint32_t)v->r_addr & MSI_ADDR_MASK) != MSI_ADDR_BASE)
			return state_fail(in, "MSI route to a non-MSI address");
	}
	return 0;
}

/* Bus lock held. What the guest's configuration and table writes did, done again. */
static void fn_apply(const struct fn_state *f)
{
	struct pci_dev *d = f->d;
	uint16_t cmd, ctrl = 0;

	for (unsigned int i = 0; i < PCI_STD_NUM_BARS; i++)
		pci_bar_reg_write(d, i, rd32(f->cfg + BARS_LO + 4 * i));
	for (unsigned int o = 0; o < PCI_CFG_SPACE_SIZE; o++)
		if (o < BARS_LO || o >= BARS_END)
			d->cfg[o] =
				(uint8_t)((d->cfg[o] & ~d->wmask[o]) | (f->cfg[o] & d->wmask[o]));
	pthread_mutex_lock(&d->irq_lock);
	for (unsigned int n = 0; n < d->msix_nr; n++) {
		struct msix_vec *v = &d->vec[n];
		int ret;

		memcpy(v->w, f->vec[n].w, sizeof(v->w));
		v->pending = f->vec[n].pending;
		if (!f->vec[n].routed || v->efd < 0)
			continue;
		ret = pci_msix_route(d, v, f->vec[n].r_addr, f->vec[n].r_data);
		if (ret)
			pr_warn("pci: %02x.0: restoring the route of MSI-X vector %u: %s", d->slot,
				n, strerror(-ret));
	}
	pthread_mutex_unlock(&d->irq_lock);
	pci_update_decode(d);
	cmd = rd16(d->cfg + PCI_COMMAND);
	if (d->msix_cap)
		ctrl = rd16(d->cfg + d->msix_cap + PCI_MSIX_FLAGS);
	pci_irq_control(d, cmd & PCI_COMMAND_INTX_DISABLE, ctrl & PCI_MSIX_FLAGS_ENABLE,
			ctrl & PCI_MSIX_FLAGS_MASKALL);
}

int pci_bus_load(struct pci_bus *pci, struct state_in *in)
{
	struct fn_state *fs = calloc(PCI_MAX_SLOTS, sizeof(*fs));
	unsigned int n = 0, nr, s = 0;
	uint32_t conf_addr;
	int ret;

	if (!fs)
		return -ENOMEM;
	pthread_mutex_lock(&pci->lock);
	conf_addr = state_get_u32(in);
	nr = state_get_u8(in);
	for (; n < nr && !state_in_error(in); n++, s++) {
		unsigned int slot = state_get_u8(in);

		while (s < PCI_MAX_SLOTS && !pci->devs[s])
			s++;
		if (state_in_error(in))
			break;
		if (s >= PCI_MAX_SLOTS || slot != s) {
			state_fail(in, "PCI functions differ from the machine's");
			break;
		}
		if (fn_load(pci->devs[s], &fs[n], in))
			break;
	}
	while (s < PCI_MAX_SLOTS && !pci->devs[s])
		s++;
	if (!state_in_error(in) && s != PCI_MAX_SLOTS)
		state_fail(in, "the machine has PCI functions the snapshot lacks");
	ret = state_in_end(in);
	if (!ret) {
		pci->conf_addr = conf_addr;
		for (unsigned int i = 0; i < nr; i++)
			fn_apply(&fs[i]);
	}
	pthread_mutex_unlock(&pci->lock);
	for (unsigned int i = 0; i < PCI_MAX_SLOTS; i++)
		free(fs[i].vec);
	free(fs);
	return ret ? -EINVAL : 0;
}
