/*
 * bootsect.S - the "disk spinner" guest of tests/e2e/qemu_test.sh.
 *
 * Purpose: a 512-byte BIOS boot sector that keeps a TCG guest busy on what
 * the agent meters for an instance and its disk, with nothing downloaded:
 * CPU time, block read requests/bytes and block write requests/bytes.
 *
 * Design: SeaBIOS loads this sector at 0000:7c00 and jumps to it with the
 * boot drive number in %dl.  The sector then loops forever; one pass is
 *   1. int 13h AH=02h: read 8 sectors (CHS 0/0/2..9)  into 0000:8000
 *   2. int 13h AH=02h: read 1 sector  (CHS 0/0/20)    into 0000:9000
 *   3. int 13h AH=03h: write 4 sectors from 0000:8000 to CHS 0/0/10..13
 *   4. spin SPIN_OUTER x 65536 iterations of `loop` (pure CPU)
 *   5. hlt: sleep until the next BIOS timer tick (PIT, 18.2 Hz)
 * SeaBIOS turns each int 13h call into one virtio-blk request, so a pass is
 * 2 read requests (4096 + 512 = 4608 bytes) and 1 write request (2048
 * bytes) at the QEMU block layer, which is what `virsh domstats` reports as
 * block.0.rd.{reqs,bytes} and block.0.wr.{reqs,bytes}.  Reads and writes
 * differ in count and size on purpose: a test that swapped them, or took
 * requests for bytes, fails.  The hlt paces the loop at ~18 passes a second
 * and lets the vCPU idle part of the time, so the guest uses roughly half a
 * host core (measured: SPIN_OUTER=256 ~35 %, 1024 ~75 % of a core) instead
 * of all of it, on machines with only two cores, and cpu.util is a value
 * strictly between 0 and 100 that a wrong normalisation would miss.
 *
 * Invariants: the disk image is at least 21 sectors long (the test makes it
 * 1 MiB, to which SeaBIOS gives a 16-head, 63-sector geometry); sectors
 * 10..13 are scratch and never the boot sector itself.  int 13h errors are
 * ignored (carry flag unchecked): the loop keeps going regardless.
 *
 * Build (tests/e2e/lib/guests.sh does this):
 *   as --32 -o bootsect.o bootsect.S
 *   ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o bootsect.bin bootsect.o
 */
	.ifndef SPIN_OUTER
	.set	SPIN_OUTER, 512
	.endif

	.code16
	.text
	.globl _start
_start:
	cli
	xorw	%ax, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movw	$0x7c00, %sp
	sti
	movb	%dl, drive		/* boot drive from the BIOS (0x80) */

again:
	movw	$0x0208, %ax		/* AH=02h read, AL=8 sectors */
	movw	$0x0002, %cx		/* CH=cylinder 0, CL=sector 2 */
	xorb	%dh, %dh		/* DH=head 0 */
	movb	drive, %dl
	movw	$0x8000, %bx		/* ES:BX = 0000:8000 */
	int	$0x13

	movw	$0x0201, %ax		/* AH=02h read, AL=1 sector */
	movw	$0x0014, %cx		/* cylinder 0, sector 20 */
	xorb	%dh, %dh
	movb	drive, %dl
	movw	$0x9000, %bx		/* ES:BX = 0000:9000 */
	int	$0x13

	movw	$0x0304, %ax		/* AH=03h write, AL=4 sectors */
	movw	$0x000a, %cx		/* cylinder 0, sector 10 */
	xorb	%dh, %dh
	movb	drive, %dl
	movw	$0x8000, %bx
	int	$0x13

	movw	$SPIN_OUTER, %si
spin_outer:
	xorw	%cx, %cx		/* 65536 iterations of pure CPU */
spin:
	loop	spin
	decw	%si
	jnz	spin_outer
	hlt				/* sleep until the next timer tick */
	jmp	again

drive:
	.byte	0x80

	.org	510
	.word	0xaa55
