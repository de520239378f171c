/* vCPU helpers that need no KVM (vmm/vcpu.h). */
#include <criterion/criterion.h>

#include "../../vmm/vcpu_exit.h"

/* The instruction a CPL3 firmware faults on when /dev/kvm ignores IOPL (issue: PVM state 3). */
Test(vcpu, port_insn_decoder_accepts_in_out_ins_outs)
{
	static const uint8_t out_dx_al[] = {0xee}, out_dx_ax[] = {0x66, 0xef},
			     in_imm[] = {0xe4, 0x60}, out_imm[] = {0xe6, 0x80},
			     rep_outsb[] = {0xf3, 0x6e}, rex_insd[] = {0x48, 0x6d},
			     seg_outs[] = {0x2e, 0x66, 0x6f}, in_dx[] = {0xec};

	cr_assert(x86_is_port_insn(out_dx_al, sizeof(out_dx_al)));
	cr_assert(x86_is_port_insn(out_dx_ax, sizeof(out_dx_ax)));
	cr_assert(x86_is_port_insn(in_imm, sizeof(in_imm)));
	cr_assert(x86_is_port_insn(out_imm, sizeof(out_imm)));
	cr_assert(x86_is_port_insn(rep_outsb, sizeof(rep_outsb)));
	cr_assert(x86_is_port_insn(rex_insd, sizeof(rex_insd)));
	cr_assert(x86_is_port_insn(seg_outs, sizeof(seg_outs)));
	cr_assert(x86_is_port_insn(in_dx, sizeof(in_dx)));
}

Test(vcpu, port_insn_decoder_rejects_other_code)
{
	static const uint8_t mov[] = {0x48, 0x89, 0xc7}, hlt[] = {0xf4}, nop[] = {0x90},
			     prefixes_only[] = {0x66, 0xf3}, two_rex[] = {0x48, 0x48, 0xee},
			     cli[] = {0xfa};

	cr_assert_not(x86_is_port_insn(mov, sizeof(mov)));
	cr_assert_not(x86_is_port_insn(hlt, sizeof(hlt)));
	cr_assert_not(x86_is_port_insn(nop, sizeof(nop)));
	cr_assert_not(x86_is_port_insn(prefixes_only, sizeof(prefixes_only)));
	cr_assert_not(x86_is_port_insn(two_rex, sizeof(two_rex)));
	cr_assert_not(x86_is_port_insn(cli, sizeof(cli)));
	cr_assert_not(x86_is_port_insn(nop, 0));
}
