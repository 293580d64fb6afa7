/* The C reference for the frame benchmark: the daemon's frame work, written as plainly fast as C allows.
 *
 * It is a consumer of the shared frame (README "Writing patterns") paced like the daemon's frame clock:
 * sleep until one period after the last frame taken, wait (timed) on the ready semaphore, memcpy the frame
 * out of the mapping, post done, then one fused loop maps the frame onto the dome wired serpentine (vane
 * v = frame row v, even vanes inside out, odd vanes reversed) through the gamma and brightness table, and
 * writes the LEDs to the output (a recording: RGB, wiring order, like `--record`).
 *
 *     reference_consumer NAME HEIGHT WIDTH GAMMA BRIGHTNESS FPS [OUTPUT [FRAMES]]
 *
 * OUTPUT defaults to /dev/null; FRAMES > 0 exits after that many frames (for tests). SIGTERM / SIGINT stop
 * it. `skyscreen-hw bench frame` compiles it with `gcc -O2` into a temporary directory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_stop(int sig) {
    (void)sig;
    stop = 1;
}

static double now_s(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static struct timespec at(double t) {
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec += 1;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: %s NAME HEIGHT WIDTH GAMMA BRIGHTNESS FPS [OUTPUT [FRAMES]]\n", argv[0]);
        return 2;
    }
    const char *name = argv[1];
    const long height = atol(argv[2]), width = atol(argv[3]);
    const double gamma = atof(argv[4]), brightness = atof(argv[5]), fps = atof(argv[6]);
    const char *output = argc > 7 ? argv[7] : "/dev/null";
    const long frames = argc > 8 ? atol(argv[8]) : 0;
    const size_t size = (size_t)(height * width * 3), row = (size_t)(width * 3);
    const double period = 1.0 / fps;

    /* round(255 * brightness * (v / 255) ** gamma), rounding half to even like numpy */
    uint8_t lut[256];
    for (int v = 0; v < 256; v++)
        lut[v] = (uint8_t)nearbyint(255.0 * brightness * pow(v / 255.0, gamma));

    char path[512], ready_name[256], done_name[256];
    snprintf(path, sizeof path, "/dev/shm/%s.frame", name);
    snprintf(ready_name, sizeof ready_name, "/%s.ready", name);
    snprintf(done_name, sizeof done_name, "/%s.done", name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    const uint8_t *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    close(fd);
    sem_t *ready = sem_open(ready_name, O_CREAT, 0660, 0);
    sem_t *done = sem_open(done_name, O_CREAT, 0660, 0);
    if (ready == SEM_FAILED || done == SEM_FAILED) {
        perror("sem_open");
        return 1;
    }
    int out = open(output, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (out < 0) {
        perror(output);
        return 1;
    }
    uint8_t *frame = malloc(size), *leds = malloc(size);
    if (!frame || !leds)
        return 1;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop; /* no SA_RESTART: the waits return EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    double next_take = 0.0;
    long shown = 0;
    while (!stop) {
        double now = now_s(CLOCK_MONOTONIC);
        if (now < next_take) {
            struct timespec until = at(next_take);
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL);
        }
        struct timespec deadline = at(now_s(CLOCK_REALTIME) + period); /* never waits longer than a period */
        if (sem_timedwait(ready, &deadline) != 0)
            continue; /* ETIMEDOUT or EINTR */
        memcpy(frame, map, size);
        sem_post(done);
        next_take = now_s(CLOCK_MONOTONIC) + period;
        for (long v = 0; v < height; v++) {
            const uint8_t *src = frame + (size_t)v * row;
            uint8_t *dst = leds + (size_t)v * row;
            if (v % 2 == 0) {
                for (size_t i = 0; i < row; i++)
                    dst[i] = lut[src[i]];
            } else {
                for (long p = 0; p < width; p++) {
                    const uint8_t *s = src + (size_t)(width - 1 - p) * 3;
                    dst[3 * p] = lut[s[0]];
                    dst[3 * p + 1] = lut[s[1]];
                    dst[3 * p + 2] = lut[s[2]];
                }
            }
        }
        if (write(out, leds, size) != (ssize_t)size && errno != EINTR) {
            perror("write");
            return 1;
        }
        if (frames > 0 && ++shown >= frames)
            break;
    }
    sem_close(ready);
    sem_close(done);
    close(out);
    return 0;
}
