/*
 * Firmware entry (docs/firmware.md): 64-bit mode, CPL3, IOPL 3, interrupts off, identity map.
 * rdi = guest RAM bytes, rsp = near the top of low RAM. No IDT: any exception is a triple fault,
 * which the VMM reports as a shutdown.
 */
	.section .text.start, "ax"
	.globl _start
	.type _start, @function
_start:
	xorl	%ebp, %ebp
	andq	$-16, %rsp		/* SysV: 16-byte aligned before the call */
	call	fw_start		/* fw_start(ram_bytes) never returns */
1:	pause
	jmp	1b
	.size _start, . - _start

	.section .note.GNU-stack, "", @progbits
