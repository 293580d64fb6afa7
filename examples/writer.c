/*
 * A Skyscreen pattern writer in C, on libc alone: the shared frame standard (docs/frame-standard.md).
 *
 *   gcc -O2 -Wall -Wextra -o writer examples/writer.c -pthread
 *   ./writer [NAME] [FRAMES] [HEIGHT] [WIDTH] [GROUP]
 *
 * Maps /dev/shm/NAME.frame, then for each frame: write the pixels, sem_post(/NAME.ready),
 * sem_timedwait(/NAME.done). Frame k lights every pixel (row r, column c) with R = r, G = c & 0xFF,
 * B = k & 0xFF, so a test can check exactly which pixel went to which LED.
 *
 * Existing files and semaphores are opened WITHOUT O_CREAT: with fs.protected_regular (2 on Debian and
 * Raspberry Pi OS) an O_CREAT open of a file in /dev/shm that another user owns fails with EACCES, even
 * for a member of its group. Only a missing one is created (exclusively, whole, mode 0660, handed to
 * GROUP, default "skyscreen", if this user is a member). A frame file of another size belongs to a
 * display of another geometry: the writer says so and exits 3; it never truncates the file.
 *
 * Exit status: 0 all FRAMES frames were taken by the daemon, 1 cannot open or map, 2 not all were
 * taken, 3 the frame file has another size than HEIGHT x WIDTH x 3.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MODE 0660
#define ATTEMPTS 5       /* open-or-create rounds for a name that keeps appearing and vanishing */
#define WAIT_SECONDS 1.0 /* how long to wait for the daemon to take a frame */
#define EXIT_OPEN 1
#define EXIT_NOT_TAKEN 2
#define EXIT_GEOMETRY 3

/* The display group's id if this process may give files to it (root or a member), else -1. */
static gid_t usable_group(const char *group) {
    struct group *g = getgrnam(group);
    if (g == NULL) return (gid_t)-1;
    if (geteuid() == 0 || getegid() == g->gr_gid) return g->gr_gid;
    gid_t groups[256];
    int n = getgroups(256, groups);
    for (int i = 0; i < n; i++)
        if (groups[i] == g->gr_gid) return g->gr_gid;
    return (gid_t)-1;
}

/* Create path at size bytes, mode 0660, group gid, under a temporary name, then link it into place:
 * nobody sees it half made. Returns the fd, -1 with errno EEXIST if path appeared meanwhile. */
static int create_whole(const char *path, size_t size, gid_t gid) {
    char tmp[512];
    const char *slash = strrchr(path, '/');
    int dir = slash ? (int)(slash - path + 1) : 0;
    snprintf(tmp, sizeof tmp, "%.*s.%s.XXXXXX", dir, path, path + dir); /* /dev/shm/.NAME.frame.XXXXXX */
    int fd = mkstemp(tmp);
    if (fd < 0) return -1;
    int ok = ftruncate(fd, (off_t)size) == 0 && fchmod(fd, MODE) == 0;
    if (ok && gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) != 0) {
        /* not allowed after all: the file keeps the creator's group */
    }
    ok = ok && link(tmp, path) == 0;
    int err = errno;
    unlink(tmp);
    if (!ok) { close(fd); errno = err; return -1; }
    return fd;
}

/* Open the frame file read-write without O_CREAT; create it only if it is missing. */
static int open_frame(const char *path, size_t size, gid_t gid) {
    for (int i = 0; i < ATTEMPTS; i++) {
        int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 || errno != ENOENT) return fd;
        fd = create_whole(path, size, gid);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    errno = EAGAIN;
    return -1;
}

/* Open a semaphore without O_CREAT; create it (O_CREAT | O_EXCL, value 0) only if it is missing. */
static sem_t *open_semaphore(const char *name, gid_t gid) {
    for (int i = 0; i < ATTEMPTS; i++) {
        sem_t *sem = sem_open(name, 0);
        if (sem != SEM_FAILED || errno != ENOENT) return sem;
        sem = sem_open(name, O_CREAT | O_EXCL, MODE, 0);
        if (sem != SEM_FAILED) { /* glibc keeps /NAME as /dev/shm/sem.NAME: give it to the group */
            char path[512];
            snprintf(path, sizeof path, "/dev/shm/sem.%s", name + 1);
            if (chmod(path, MODE) != 0 || (gid != (gid_t)-1 && chown(path, (uid_t)-1, gid) != 0)) {
                perror(path); /* the daemon may refuse it; it says how to fix that */
            }
            return sem;
        }
        if (errno != EEXIST) return SEM_FAILED;
    }
    errno = EAGAIN;
    return SEM_FAILED;
}

/* sem_timedwait takes an absolute CLOCK_REALTIME time. */
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
    gid_t gid = usable_group(argc > 5 ? argv[5] : "skyscreen");
    if (height <= 0 || width <= 0) {
        fprintf(stderr, "HEIGHT and WIDTH must be > 0\n");
        return EXIT_OPEN;
    }
    size_t size = (size_t)height * (size_t)width * 3;
    char path[256], ready_name[256], done_name[256];
    snprintf(path, sizeof path, "/dev/shm/%s.frame", name);
    snprintf(ready_name, sizeof ready_name, "/%s.ready", name);
    snprintf(done_name, sizeof done_name, "/%s.done", name);

    int fd = open_frame(path, size, gid);
    if (fd < 0) { perror(path); return EXIT_OPEN; }
    struct stat st;
    if (fstat(fd, &st) != 0) { perror(path); return EXIT_OPEN; }
    if (st.st_size == 0 && ftruncate(fd, (off_t)size) != 0) { perror(path); return EXIT_OPEN; }
    if (st.st_size != 0 && (size_t)st.st_size != size) {
        fprintf(stderr,
                "%s is %lld bytes, but this writer expects %ldx%ld RGB = %zu bytes: the display has another"
                " geometry; run the writer with the display's HEIGHT and WIDTH\n",
                path, (long long)st.st_size, height, width, size);
        return EXIT_GEOMETRY;
    }
    unsigned char *frame = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (frame == MAP_FAILED) { perror("mmap"); return EXIT_OPEN; }
    close(fd);

    sem_t *ready = open_semaphore(ready_name, gid);
    if (ready == SEM_FAILED) { perror(ready_name); return EXIT_OPEN; }
    sem_t *done = open_semaphore(done_name, gid);
    if (done == SEM_FAILED) { perror(done_name); return EXIT_OPEN; }

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
        while (sem_trywait(done) == 0) {} /* a stale done (a frame given up on) must not answer this one */
        sem_post(ready);
        if (wait_done(done, WAIT_SECONDS) == 0) {
            taken++;
        } else if (sem_trywait(ready) != 0) {                /* not withdrawn: the daemon took it... */
            if (wait_done(done, WAIT_SECONDS) == 0) taken++; /* ...just now: its done is on the way */
        }
    }
    munmap(frame, size);
    sem_close(ready);
    sem_close(done);
    printf("%ld frames taken\n", taken);
    return taken == frames ? 0 : EXIT_NOT_TAKEN;
}
