/*
 * A Skyscreen pattern writer in C for the shared frame v2, on libc alone (docs/frame-standard.md, "v2").
 *
 *   gcc -O2 -Wall -Wextra -o writer_v2 examples/writer_v2.c -pthread
 *   ./writer_v2 [NAME] [FRAMES] [MODE]          MODE: progressive (default) or interlaced
 *
 * The daemon makes /dev/shm/NAME.frames (WRITER_FILE, the original Skyscreen's variable, may name it
 * instead): a 64-byte header, then SLOTS frame slots of HEIGHT x WIDTH x 3 bytes. This writer learns the
 * geometry from the header, takes the writer lock (one writer at a time), then for each frame n:
 * sem_timedwait(/NAME.frames.free); fill slot written % slots; written += 1; sem_post(/NAME.frames.ready).
 * It runs up to SLOTS frames ahead of the display.
 *
 * Frame n lights pixel (row r, column c) with R = n & 0xFF, G = (n >> 8) & 0xFF, B = (r + c) & 0xFF, so a
 * test can tell every frame and its order. Interlaced, frame n carries (writes) only the rows r % 2 == n % 2.
 *
 * Exit status: 0 all FRAMES frames posted, 1 cannot open or map (no daemon?), 2 no free slot came within
 * WAIT_SECONDS (the display stopped taking frames), 3 not a v2 file (magic, version) or its geometry changed,
 * 4 another writer holds the lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HEADER_SIZE 64
#define VERSION 2
#define FLAG_INTERLACED 1u
#define WAIT_SECONDS 5.0   /* for a free slot, before giving up */
#define OPEN_SECONDS 2.0   /* for the daemon to make the file (both starting at once) */
#define LOCK_SECONDS 1.0   /* for another writer to finish */
#define EXIT_OPEN 1
#define EXIT_NOT_TAKEN 2
#define EXIT_HEADER 3
#define EXIT_LOCKED 4

/* The header, little-endian (this example assumes a little-endian CPU, as every Raspberry Pi is). */
struct header {
    char magic[8];     /* "SKYFRAME" */
    uint32_t version;  /* 2 */
    uint32_t width;
    uint32_t height;
    uint32_t slots;
    uint32_t flags;    /* bit 0: interlaced; set by the writer before its first post */
    uint32_t reserved;
    uint64_t written;  /* frames posted: only writers change it */
    uint64_t taken;    /* frames taken: only the daemon changes it */
    uint8_t reserved2[16];
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void pause_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* sem_timedwait takes an absolute CLOCK_REALTIME time. */
static int timed_wait(sem_t *sem, double seconds) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long ns = ts.tv_nsec + (long)((seconds - (long)seconds) * 1e9);
    ts.tv_sec += (time_t)seconds + ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    while (sem_timedwait(sem, &ts) != 0) {
        if (errno != EINTR) return -1;
    }
    return 0;
}

/* The header's problem, or NULL if it is a v2 header of a usable geometry. */
static const char *header_problem(const struct header *h) {
    if (memcmp(h->magic, "SKYFRAME", 8) != 0) return "its magic is not SKYFRAME: not a shared frame v2 file";
    if (h->version != VERSION) return "its version is not 2";
    if (h->width == 0 || h->height == 0 || h->slots == 0) return "its geometry is empty";
    return NULL;
}

/* Open a semaphore the daemon made; never create one (free must start at the slots). */
static sem_t *open_semaphore(const char *name) {
    double until = now() + OPEN_SECONDS;
    for (;;) {
        sem_t *sem = sem_open(name, 0);
        if (sem != SEM_FAILED || errno != ENOENT || now() > until) return sem;
        pause_ms(50);
    }
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "skyscreen";
    long frames = argc > 2 ? atol(argv[2]) : 100;
    int interlaced = argc > 3 && strcmp(argv[3], "interlaced") == 0;
    char path[512], ready_name[300], free_name[300], display[256];
    const char *file = getenv("WRITER_FILE");
    if (file != NULL && *file) { /* /dev/shm/NAME.frames names display NAME */
        const char *base = strrchr(file, '/');
        base = base ? base + 1 : file;
        size_t len = strlen(base);
        if (len > 7 && strcmp(base + len - 7, ".frames") == 0) len -= 7;
        snprintf(display, sizeof display, "%.*s", (int)len, base);
        snprintf(path, sizeof path, "%s", file);
        name = display;
    } else {
        snprintf(path, sizeof path, "/dev/shm/%s.frames", name);
    }
    snprintf(ready_name, sizeof ready_name, "/%s.frames.ready", name);
    snprintf(free_name, sizeof free_name, "/%s.frames.free", name);

    /* open (never create: the daemon alone sets geometry and slots), waiting a little for a daemon starting */
    int fd = -1;
    struct header head;
    for (double until = now() + OPEN_SECONDS;; pause_ms(50)) {
        fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && now() < until) continue;
        if (fd < 0) {
            fprintf(stderr, "%s: %s (is skyscreen-hw running for display %s?)\n", path, strerror(errno), name);
            return EXIT_OPEN;
        }
        ssize_t got = pread(fd, &head, sizeof head, 0);
        if (got == (ssize_t)sizeof head && memcmp(head.magic, "\0\0\0\0\0\0\0\0", 8) != 0) break;
        close(fd); /* empty: the daemon is making it right now */
        if (now() >= until) {
            fprintf(stderr, "%s: the header is empty: is a daemon starting?\n", path);
            return EXIT_OPEN;
        }
    }
    /* one writer at a time: the lock goes with this process (also when it is killed) */
    for (double until = now() + LOCK_SECONDS; flock(fd, LOCK_EX | LOCK_NB) != 0; pause_ms(5)) {
        if (errno != EWOULDBLOCK || now() > until) {
            fprintf(stderr, "%s: another writer is writing to display %s: one writer at a time\n", path, name);
            return EXIT_LOCKED;
        }
    }
    const char *problem = header_problem(&head);
    if (problem != NULL) {
        fprintf(stderr, "%s: %s (magic \"%.8s\", version %u); restart skyscreen-hw to make it anew\n", path,
                problem, head.magic, head.version);
        return EXIT_HEADER;
    }
    uint32_t height = head.height, width = head.width, slots = head.slots;
    size_t frame_bytes = (size_t)height * width * 3, total = HEADER_SIZE + (size_t)slots * frame_bytes;
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size < total) {
        fprintf(stderr, "%s: shorter than its header says (%zu bytes): restart skyscreen-hw\n", path, total);
        return EXIT_OPEN;
    }
    unsigned char *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) { perror("mmap"); return EXIT_OPEN; }
    volatile struct header *shared = (volatile struct header *)base;
    sem_t *ready = open_semaphore(ready_name);
    if (ready == SEM_FAILED) { perror(ready_name); return EXIT_OPEN; }
    sem_t *free_slots = open_semaphore(free_name);
    if (free_slots == SEM_FAILED) { perror(free_name); return EXIT_OPEN; }
    printf("%s: %ux%u, %u slots\n", path, height, width, slots);
    fflush(stdout);

    long posted = 0;
    for (; posted < frames; posted++) {
        if (timed_wait(free_slots, WAIT_SECONDS) != 0) break; /* nobody takes frames any more */
        /* still the daemon's v2 file of this geometry? (a daemon restarted with other slots makes a new one) */
        if (memcmp((const void *)shared->magic, "SKYFRAME", 8) != 0 || shared->version != VERSION ||
            shared->width != width || shared->height != height || shared->slots != slots) {
            fprintf(stderr, "%s: the header changed under the writer (magic, version or geometry)\n", path);
            sem_post(free_slots);
            return EXIT_HEADER;
        }
        uint32_t flags = interlaced ? FLAG_INTERLACED : 0;
        if (shared->flags != flags) shared->flags = flags; /* before the first post */
        uint64_t n = __atomic_load_n(&shared->written, __ATOMIC_ACQUIRE);
        unsigned char *slot = base + HEADER_SIZE + (size_t)(n % slots) * frame_bytes;
        for (uint32_t r = interlaced ? (uint32_t)(n % 2) : 0; r < height; r += interlaced ? 2 : 1) {
            unsigned char *row = slot + (size_t)r * width * 3;
            for (uint32_t c = 0; c < width; c++) {
                row[3 * c] = (unsigned char)(n & 0xFF);
                row[3 * c + 1] = (unsigned char)((n >> 8) & 0xFF);
                row[3 * c + 2] = (unsigned char)((r + c) & 0xFF);
            }
        }
        __atomic_store_n(&shared->written, n + 1, __ATOMIC_RELEASE); /* the pixels before the count */
        sem_post(ready);
    }
    munmap(base, total);
    sem_close(ready);
    sem_close(free_slots);
    close(fd);
    printf("%ld frames posted\n", posted);
    return posted == frames ? 0 : EXIT_NOT_TAKEN;
}
