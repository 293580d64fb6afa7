/*
 * A Skyscreen pattern writer in C, on libc alone: the shared frame standard (BRIEF §2).
 *
 *   gcc -O2 -o writer examples/writer.c -pthread
 *   ./writer [NAME] [FRAMES] [HEIGHT] [WIDTH]
 *
 * Maps /dev/shm/NAME.frame (creating it at its exact size if missing, never truncating it), then for
 * each frame: write the pixels, sem_post(/NAME.ready), sem_timedwait(/NAME.done). Frame k lights
 * every pixel (row r, column c) with R = r, G = c & 0xFF, B = k & 0xFF, so a test can check exactly
 * which pixel went to which LED. Exits 0 once FRAMES frames were taken by the daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int wait_done(sem_t *done, double seconds) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long ns = ts.tv_nsec + (long)((seconds - (long)seconds) * 1e9);
    ts.tv_sec += (time_t)seconds + ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    while (sem_timedwait(done, &ts) != 0) {
        if (errno != EINTR) return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "skyscreen";
    long frames = argc > 2 ? atol(argv[2]) : 100;
    long height = argc > 3 ? atol(argv[3]) : 360;
    long width = argc > 4 ? atol(argv[4]) : 288;
    size_t size = (size_t)height * (size_t)width * 3;
    char path[256], ready_name[256], done_name[256];
    snprintf(path, sizeof path, "/dev/shm/%s.frame", name);
    snprintf(ready_name, sizeof ready_name, "/%s.ready", name);
    snprintf(done_name, sizeof done_name, "/%s.done", name);

    int fd = open(path, O_RDWR | O_CREAT, 0660);
    if (fd < 0) { perror(path); return 1; }
    struct stat st;
    if (fstat(fd, &st) != 0) { perror(path); return 1; }
    if ((size_t)st.st_size < size && ftruncate(fd, (off_t)size) != 0) { perror(path); return 1; }
    unsigned char *frame = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (frame == MAP_FAILED) { perror("mmap"); return 1; }
    close(fd);

    sem_t *ready = sem_open(ready_name, O_CREAT, 0660, 0);
    sem_t *done = sem_open(done_name, O_CREAT, 0660, 0);
    if (ready == SEM_FAILED || done == SEM_FAILED) { perror("sem_open"); return 1; }
    while (sem_trywait(done) == 0) {}  /* drain stale done counts */

    long taken = 0;
    for (long k = 0; taken < frames && k < frames * 50; k++) {
        for (long r = 0; r < height; r++) {
            unsigned char *row = frame + (size_t)r * (size_t)width * 3;
            for (long c = 0; c < width; c++) {
                row[3 * c] = (unsigned char)r;
                row[3 * c + 1] = (unsigned char)(c & 0xFF);
                row[3 * c + 2] = (unsigned char)(k & 0xFF);
            }
        }
        sem_post(ready);
        if (wait_done(done, 1.0) == 0) {
            taken++;
        } else if (sem_trywait(ready) != 0) {
            if (wait_done(done, 1.0) == 0) taken++; /* the daemon took it just now */
        }
    }
    munmap(frame, size);
    sem_close(ready);
    sem_close(done);
    printf("%ld frames taken\n", taken);
    return taken == frames ? 0 : 2;
}
