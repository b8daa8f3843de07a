/*
 * The board interface for a native process: the serial link is stdin/stdout
 * (binary, unbuffered), time is CLOCK_MONOTONIC in nanoseconds, and the
 * dataset image is the file named by MEDYATE_DATASET. When the host closes
 * stdin, the process exits with 0 (nothing more can ever arrive). Lets the device code run
 * and be tested on the host exactly as it runs on a board.
 */
#define _POSIX_C_SOURCE 200809L
#include "mdy_board.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char board_name[] = "host";

static uint64_t t0;
static const uint8_t *dataset;
static int dataset_loaded;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void board_init(void)
{
    t0 = now_ns();
}

void board_uart_write(const uint8_t *data, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, data, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            _exit(EXIT_FAILURE);  /* the host went away */
        }
        data += w;
        n -= (size_t)w;
    }
}

int board_uart_read(uint32_t timeout_us)
{
    struct pollfd p = {STDIN_FILENO, POLLIN, 0};
    uint64_t deadline = now_ns() + (uint64_t)timeout_us * 1000u;
    for (;;) {
        uint64_t now = now_ns();
        int ms = now >= deadline ? 0 : (int)((deadline - now + 999999u) / 1000000u);
        int r = poll(&p, 1, ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        uint8_t c;
        ssize_t got = read(STDIN_FILENO, &c, 1);
        if (got == 1)
            return c;
        if (got == 0)
            exit(0);  /* end of input: the host closed the link; a serial
                         line never ends, so this only means "stop" */
        if (errno != EINTR && errno != EAGAIN)
            return -1;
    }
}

uint64_t board_cycles(void)
{
    return now_ns() - t0;
}

uint32_t board_cycles_hz(void)
{
    return 1000000000u;
}

uint32_t board_stack_high_water(void)
{
    return 0;  /* not measured for a native process */
}

uint32_t board_stack_size(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < 0xFFFFFFFFu)
        return (uint32_t)rl.rlim_cur;
    return 0;
}

static uint32_t dataset_size;

const uint8_t *board_dataset(void)
{
    if (dataset_loaded)
        return dataset;
    dataset_loaded = 1;
    const char *path = getenv("MEDYATE_DATASET");
    if (!path || !*path)
        return NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "board: MEDYATE_DATASET=%s: %s\n", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size >= 4) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED && memcmp(m, "MDYD", 4) == 0) {
            dataset = (const uint8_t *)m;
            dataset_size = st.st_size > 0xFFFFFFFF ? 0xFFFFFFFFu : (uint32_t)st.st_size;
        }
        else if (m != MAP_FAILED)
            munmap(m, (size_t)st.st_size);
    }
    close(fd);
    return dataset;
}

uint32_t board_dataset_size(void)
{
    (void)board_dataset();
    return dataset_size;
}

void board_exit(int code)
{
    exit(code);
}
