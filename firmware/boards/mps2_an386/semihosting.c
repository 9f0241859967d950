/* ARM semihosting for Cortex-M: the operation number in r0, a parameter block in r1, bkpt 0xAB. */
#include "semihosting.h"

#include <string.h>

enum {
    SYS_OPEN = 0x01,
    SYS_CLOSE = 0x02,
    SYS_WRITE = 0x05,
    SYS_READ = 0x06,
    SYS_SEEK = 0x0A,
    SYS_GET_CMDLINE = 0x15,
    SYS_EXIT = 0x18,
    SYS_EXIT_EXTENDED = 0x20,
};

#define ADP_STOPPED_APPLICATION_EXIT 0x20026

static int32_t sh_call(int32_t op, void *block) {
    register int32_t r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

int32_t sh_open(const char *path, int32_t mode) {
    uint32_t block[3] = {(uint32_t)path, (uint32_t)mode, (uint32_t)strlen(path)};
    return sh_call(SYS_OPEN, block);
}

int32_t sh_read(int32_t handle, void *buf, size_t len) {
    uint32_t block[3] = {(uint32_t)handle, (uint32_t)buf, (uint32_t)len};
    return (int32_t)len - sh_call(SYS_READ, block); /* the call returns the bytes NOT read */
}

void sh_write(int32_t handle, const void *buf, size_t len) {
    uint32_t block[3] = {(uint32_t)handle, (uint32_t)buf, (uint32_t)len};
    (void)sh_call(SYS_WRITE, block);
}

int32_t sh_seek(int32_t handle, uint32_t position) {
    uint32_t block[2] = {(uint32_t)handle, position};
    return sh_call(SYS_SEEK, block);
}

void sh_close(int32_t handle) {
    uint32_t block[1] = {(uint32_t)handle};
    (void)sh_call(SYS_CLOSE, block);
}

int32_t sh_get_cmdline(char *buf, size_t len) {
    uint32_t block[2] = {(uint32_t)buf, (uint32_t)len};
    return sh_call(SYS_GET_CMDLINE, block);
}

void sh_exit(int code) {
    uint32_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint32_t)code};
    (void)sh_call(SYS_EXIT_EXTENDED, block);
    (void)sh_call(SYS_EXIT, (void *)ADP_STOPPED_APPLICATION_EXIT); /* fallback: exit status 0 */
    for (;;) {
    }
}
