/*
 * Cortex-M4F start-up for QEMU mps2-an386: vector table, Reset_Handler (copy .data, zero .bss,
 * enable the FPU, paint the stack), then main(); the exit status goes back through semihosting.
 */
#include <stddef.h>
#include <stdint.h>

#include "semihosting.h"

extern uint32_t __etext, __data_start__, __data_end__, __bss_start__, __bss_end__;
extern uint32_t __stack_limit, __stack_top;

int main(void);
void Reset_Handler(void);

#define STACK_PAINT 0xC5C5C5C5u

static void Default_Handler(void) {
    static const char message[] = "ERROR unexpected exception\n";
    sh_write(sh_open(":tt", 4), message, sizeof(message) - 1);
    sh_exit(3);
}

__attribute__((section(".isr_vector"), used)) static void (*const g_vectors[16])(void) = {
    (void (*)(void))(&__stack_top), /* initial stack pointer */
    Reset_Handler,
    Default_Handler, /* NMI */
    Default_Handler, /* HardFault */
    Default_Handler, /* MemManage */
    Default_Handler, /* BusFault */
    Default_Handler, /* UsageFault */
    0, 0, 0, 0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMonitor */
    0,
    Default_Handler, /* PendSV */
    Default_Handler, /* SysTick */
};

/* Fill the unused stack with a pattern; kws_stack_high_water() finds how much of it was overwritten. */
static void paint_stack(void) {
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (uint32_t *p = &__stack_limit; p < sp - 16; ++p) {
        *p = STACK_PAINT;
    }
}

size_t kws_stack_high_water(void) {
    const uint32_t *p = &__stack_limit;
    while (p < &__stack_top && *p == STACK_PAINT) {
        ++p;
    }
    return (size_t)((const uint8_t *)&__stack_top - (const uint8_t *)p);
}

void Reset_Handler(void) {
    const uint32_t *src = &__etext;
    for (uint32_t *dst = &__data_start__; dst < &__data_end__;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &__bss_start__; dst < &__bss_end__;) {
        *dst++ = 0;
    }
    /* CPACR: full access to coprocessors 10 and 11 (the FPU). */
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    paint_stack();
    sh_exit(main());
}
