/* ARM semihosting (bkpt 0xAB) calls used by the QEMU board: files, console, command line, exit. */
#ifndef KWS_SEMIHOSTING_H
#define KWS_SEMIHOSTING_H

#include <stddef.h>
#include <stdint.h>

int32_t sh_open(const char *path, int32_t mode); /* mode 1 = "rb", 4 = "w"; returns -1 on error */
int32_t sh_read(int32_t handle, void *buf, size_t len);        /* returns bytes read */
void sh_write(int32_t handle, const void *buf, size_t len);
int32_t sh_seek(int32_t handle, uint32_t position);            /* absolute; 0 on success */
void sh_close(int32_t handle);
int32_t sh_get_cmdline(char *buf, size_t len);                 /* 0 on success */
void sh_exit(int code) __attribute__((noreturn));

#endif /* KWS_SEMIHOSTING_H */
