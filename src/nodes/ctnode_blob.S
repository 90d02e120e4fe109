/* The bytes of kh-ctnode (ctnode_main.c), built before this file: ct.c
 * hands them to the spawner in a sealed memfd. */
	.section .rodata
	.globl	kh_ctnode_start
	.globl	kh_ctnode_end
	.balign	16
kh_ctnode_start:
	.incbin	KH_CTNODE
kh_ctnode_end:
	.section .note.GNU-stack,"",@progbits
