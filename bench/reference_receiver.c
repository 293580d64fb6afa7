/* The C reference for the network receive benchmark, and its sender.
 *
 *     reference_receiver recv PORT MODE            receive on 127.0.0.1:PORT until SIGTERM, then print
 *                                                  the datagrams received
 *     reference_receiver send FILE PORT FPS SECONDS SEQ GSO
 *                                                  send FILE's packets (one frame) to 127.0.0.1:PORT at FPS
 *                                                  frames a second for SECONDS, then print frames sent
 *
 * MODE "wait": the plain fast loop: recvmmsg(MSG_WAITFORONE) blocks for the first datagram and takes
 * whatever else is queued, 1,024 at a time. MODE "burst": poll() for the first datagram, sleep 1 ms while
 * the rest of the burst arrives, then drain it with recvmmsg(MSG_DONTWAIT): the daemon's own strategy.
 * Both only count the datagrams: the kernel's work and the loop around it, nothing else.
 *
 * FILE holds one frame: each packet as a 2-byte little-endian length and its bytes. SEQ >= 0: byte SEQ of
 * every packet is the frame number mod 256 (E1.31's sequence, so receivers keep the frames). GSO 1: runs
 * of equal-length packets go out as UDP_SEGMENT sends of up to 64 packets (what the daemon's network
 * outputs do), else sendmmsg of single datagrams (what most lighting software does).
 *
 * Only ever sends to 127.0.0.1. `skyscreen-hw bench network_receive` compiles it with `gcc -O2`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <signal.h>
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

#define SLOTS 1024
#define SLOT_BYTES 2048
#define MAX_PACKETS 4096
#define GSO_PACKETS 64
#define GSO_BYTES 65000 /* a UDP datagram's limit, GSO or not */

static volatile sig_atomic_t stop;

static void on_stop(int sig) {
    (void)sig;
    stop = 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_until(double t) {
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !stop) {
    }
}

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    to.sin_port = htons((uint16_t)port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return to;
}

static int receive(int port, const char *mode) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int size = 8 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    struct sockaddr_in at = loopback(port);
    if (bind(fd, (struct sockaddr *)&at, sizeof at) != 0) {
        perror("bind");
        return 1;
    }
    static unsigned char buffer[SLOTS][SLOT_BYTES];
    static struct iovec iov[SLOTS];
    static struct mmsghdr msgs[SLOTS];
    for (int i = 0; i < SLOTS; i++) {
        iov[i].iov_base = buffer[i];
        iov[i].iov_len = SLOT_BYTES;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int burst = strcmp(mode, "burst") == 0;
    printf("ready\n");
    fflush(stdout);
    long long received = 0;
    while (!stop) {
        if (burst) {
            struct pollfd p = {fd, POLLIN, 0};
            if (poll(&p, 1, 100) <= 0)
                continue;
            struct timespec pause = {0, 1000000};
            nanosleep(&pause, NULL);
            for (;;) {
                int n = recvmmsg(fd, msgs, SLOTS, MSG_DONTWAIT, NULL);
                if (n <= 0)
                    break;
                received += n;
                if (n < SLOTS)
                    break;
            }
        } else {
            int n = recvmmsg(fd, msgs, SLOTS, MSG_WAITFORONE, NULL);
            if (n > 0)
                received += n;
        }
    }
    printf("%lld\n", received);
    return 0;
}

static int send_frames(const char *file, int port, double fps, double seconds, int seq, int gso) {
    FILE *f = fopen(file, "rb");
    if (!f) {
        perror(file);
        return 1;
    }
    static unsigned char *packets[MAX_PACKETS];
    static size_t lengths[MAX_PACKETS];
    int count = 0;
    unsigned char len[2];
    while (count < MAX_PACKETS && fread(len, 1, 2, f) == 2) {
        lengths[count] = (size_t)len[0] | (size_t)len[1] << 8;
        packets[count] = malloc(lengths[count]);
        if (fread(packets[count], 1, lengths[count], f) != lengths[count]) {
            fprintf(stderr, "%s: cut short\n", file);
            return 1;
        }
        count++;
    }
    fclose(f);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int size = 8 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    struct sockaddr_in to = loopback(port);
    /* the packets laid end to end, for GSO sends of equal-length runs */
    size_t total = 0;
    for (int i = 0; i < count; i++)
        total += lengths[i];
    unsigned char *flat = malloc(total);
    static struct mmsghdr msgs[MAX_PACKETS];
    static struct iovec iov[MAX_PACKETS];
    static char control[MAX_PACKETS][CMSG_SPACE(sizeof(uint16_t))];
    double start = now_s();
    long long frames = 0;
    while (!stop && now_s() - start < seconds) {
        size_t at = 0;
        for (int i = 0; i < count; i++) {
            if (seq >= 0 && (size_t)seq < lengths[i])
                packets[i][seq] = (unsigned char)frames;
            memcpy(flat + at, packets[i], lengths[i]);
            at += lengths[i];
        }
        int m = 0;
        at = 0;
        for (int i = 0; i < count;) {
            int run = 1;
            while (gso && i + run < count && run < GSO_PACKETS && lengths[i + run] == lengths[i] &&
                   lengths[i] * (size_t)(run + 1) <= GSO_BYTES)
                run++;
            size_t bytes = lengths[i] * (size_t)run;
            memset(&msgs[m], 0, sizeof msgs[m]);
            iov[m].iov_base = flat + at;
            iov[m].iov_len = bytes;
            msgs[m].msg_hdr.msg_name = &to;
            msgs[m].msg_hdr.msg_namelen = sizeof to;
            msgs[m].msg_hdr.msg_iov = &iov[m];
            msgs[m].msg_hdr.msg_iovlen = 1;
            if (run > 1) {
                msgs[m].msg_hdr.msg_control = control[m];
                msgs[m].msg_hdr.msg_controllen = sizeof control[m];
                struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[m].msg_hdr);
                c->cmsg_level = SOL_UDP;
                c->cmsg_type = UDP_SEGMENT;
                c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
                uint16_t segment = (uint16_t)lengths[i];
                memcpy(CMSG_DATA(c), &segment, sizeof segment);
            }
            at += bytes;
            i += run;
            m++;
        }
        for (int sent = 0; sent < m;) {
            int n = sendmmsg(fd, msgs + sent, (unsigned)(m - sent), 0);
            if (n <= 0) {
                if (errno == EAGAIN || errno == ENOBUFS || errno == EINTR)
                    continue;
                perror("sendmmsg");
                return 1;
            }
            sent += n;
        }
        frames++;
        sleep_until(start + (double)frames / fps);
    }
    printf("%lld\n", frames);
    return 0;
}

int main(int argc, char **argv) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop; /* no SA_RESTART: a blocked recvmmsg returns EINTR and the loop sees stop */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (argc == 4 && strcmp(argv[1], "recv") == 0)
        return receive(atoi(argv[2]), argv[3]);
    if (argc == 8 && strcmp(argv[1], "send") == 0)
        return send_frames(argv[2], atoi(argv[3]), atof(argv[4]), atof(argv[5]), atoi(argv[6]), atoi(argv[7]));
    fprintf(stderr, "usage: %s recv PORT wait|burst | send FILE PORT FPS SECONDS SEQ GSO\n", argv[0]);
    return 2;
}
