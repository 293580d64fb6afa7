/* The plainest fast sender of a frame's UDP packets, for `skyscreen-hw bench network` to compare with.
 *
 * reference_sender HOST PORT PACKETS STRIDE LAST HEADER FPS SECONDS
 *
 * Sends PACKETS packets of STRIDE bytes (the last LAST bytes) to HOST:PORT, FPS frames a second for
 * SECONDS, paced on an absolute schedule. Each frame: the pixels are copied into the packets after their
 * HEADER-byte headers (memcpy from a separate frame buffer, as any sender must), a sequence byte changes
 * in every header, and the packets go out with UDP segmentation offload: one sendmsg per run of up to 64
 * equal packets (UDP_SEGMENT), on a non-blocking socket. Prints the CPU time a frame, in microseconds,
 * and the frames sent.  Build: gcc -O2 -o reference_sender bench/reference_sender.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#define MAX_SEGMENTS 64
#define MAX_BYTES (65507 - 8)

static double now(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: %s HOST PORT PACKETS STRIDE LAST HEADER FPS SECONDS\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]), packets = atoi(argv[3]), stride = atoi(argv[4]), last = atoi(argv[5]);
    int header = atoi(argv[6]);
    double fps = atof(argv[7]), seconds = atof(argv[8]);
    size_t total = (size_t)(packets - 1) * stride + last;
    size_t pixels = total - (size_t)packets * header;
    uint8_t *buffer = calloc(total, 1), *frame = malloc(pixels);
    for (size_t i = 0; i < pixels; i++) frame[i] = (uint8_t)(i * 7);

    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &to.sin_addr);
    int per = MAX_BYTES / stride;
    if (per > MAX_SEGMENTS) per = MAX_SEGMENTS;

    double period = 1.0 / fps, start = now(CLOCK_MONOTONIC), cpu0 = now(CLOCK_PROCESS_CPUTIME_ID);
    long frames = 0, dropped = 0;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (now(CLOCK_MONOTONIC) - start < seconds) {
        size_t from = 0;
        for (int p = 0; p < packets; p++) {  /* the pixels into the packets, a sequence byte in each header */
            size_t len = (size_t)(p == packets - 1 ? last : stride) - header;
            memcpy(buffer + (size_t)p * stride + header, frame + from, len);
            buffer[(size_t)p * stride + 1] = (uint8_t)frames;
            from += len;
        }
        for (int a = 0; a < packets; a += per) {
            int n = packets - a < per ? packets - a : per;
            size_t len = (size_t)(n - 1) * stride + (a + n == packets ? last : stride);
            struct iovec iov = {.iov_base = buffer + (size_t)a * stride, .iov_len = len};
            char control[CMSG_SPACE(sizeof(uint16_t))] = {0};
            struct msghdr msg = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &iov, .msg_iovlen = 1};
            if (n > 1) {
                msg.msg_control = control;
                msg.msg_controllen = sizeof control;
                struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
                cm->cmsg_level = SOL_UDP;
                cm->cmsg_type = UDP_SEGMENT;
                cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
                uint16_t size = (uint16_t)stride;
                memcpy(CMSG_DATA(cm), &size, sizeof size);
            }
            if (sendmsg(sock, &msg, 0) < 0) {
                if (errno == EAGAIN || errno == ENOBUFS) { dropped++; break; }
                perror("sendmsg");
                return 1;
            }
        }
        frames++;
        next.tv_nsec += (long)(period * 1e9);
        while (next.tv_nsec >= 1000000000L) { next.tv_nsec -= 1000000000L; next.tv_sec++; }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
    double cpu = now(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    printf("%.3f %ld %ld\n", frames ? cpu / frames * 1e6 : 0.0, frames, dropped);
    return 0;
}
