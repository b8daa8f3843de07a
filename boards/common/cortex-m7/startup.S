/*
 * Reset entry for a Cortex-M7 image. Written in assembly so that nothing runs
 * before the FPU is enabled: the compiler may use FP registers anywhere in C
 * code built with -mfloat-abi=hard, even for integer copies.
 *
 * Order: FPU on (CPACR), .data copied from flash, .bss zeroed, the whole stack
 * region painted with 0xDEADBEEF (board_stack_high_water scans for it; nothing
 * is on the stack yet, so all of it can be painted), constructors, main(),
 * then board_exit(main's return value).
 */
    .syntax unified
    .thumb

    .equ CPACR, 0xE000ED88
    .equ STACK_PATTERN, 0xDEADBEEF

    .section .text.Reset_Handler, "ax", %progbits
    .global Reset_Handler
    .type Reset_Handler, %function
    .thumb_func
Reset_Handler:
    ldr   r0, =__stack_top
    mov   sp, r0

    /* Full access to CP10 and CP11 (the FPU). */
    ldr   r0, =CPACR
    ldr   r1, [r0]
    orr   r1, r1, #(0xF << 20)
    str   r1, [r0]
    dsb
    isb

    /* .data: copy its initial values from flash. */
    ldr   r0, =__data_load
    ldr   r1, =__data_start
    ldr   r2, =__data_end
1:  cmp   r1, r2
    bhs   2f
    ldr   r3, [r0], #4
    str   r3, [r1], #4
    b     1b
2:
    /* .bss: zero. */
    ldr   r1, =__bss_start
    ldr   r2, =__bss_end
    movs  r3, #0
3:  cmp   r1, r2
    bhs   4f
    str   r3, [r1], #4
    b     3b
4:
    /* Stack: paint with the pattern. */
    ldr   r1, =__stack_bottom
    ldr   r2, =__stack_top
    ldr   r3, =STACK_PATTERN
5:  cmp   r1, r2
    bhs   6f
    str   r3, [r1], #4
    b     5b
6:
    bl    __libc_init_array
    bl    main
    bl    board_exit
7:  b     7b
    .size Reset_Handler, . - Reset_Handler

    /* Weak no-ops so that an image linked without newlib's startup objects
       still links; newlib's own definitions take precedence. */
    .section .text._init, "ax", %progbits
    .weak _init
    .type _init, %function
    .thumb_func
_init:
    bx    lr
    .size _init, . - _init
    .weak _fini
    .type _fini, %function
    .thumb_func
_fini:
    bx    lr
    .size _fini, . - _fini
