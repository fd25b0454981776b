// SPDX-License-Identifier: Apache-2.0
// Copyright the nitro-bundles authors
//
// nb-init: PID 1 of a nitro-bundles enclave image (specs/enclave-image.md §13).
//
// Steps (§13.2): devtmpfs on /dev, /dev/console as fd 0-2, /nsm.ko, /dev/nsm, the heartbeat
// to CID 3 port 9000, /env and /cmd, the mounts under /rootfs, loopback up, chroot, then the
// command in its own session while PID 1 reaps every child; when the command exits, sync and
// end the enclave (§13.5). Any failure prints one line on the console and ends it too (never a
// silent hang).
//
// Built with -DNB_INIT_TEST it is a test tool instead (§13.6): the parsers, the heartbeat
// client (over a Unix socket) and the supervisor, with failures as exit codes.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

// §13.3 limits: each file at most 64 KiB and 1024 items.
#define NB_LIST_MAX_BYTES 65536
#define NB_LIST_MAX_ITEMS 1024
// §13.4 heartbeat.
#define NB_HB_CID 3
#define NB_HB_PORT 9000
#define NB_HB_BYTE 0xB7
#define NB_HB_TIMEOUT_MS 30000

// §13.5 failure classes: the test build exits with them, the real init prints them.
enum nb_fail {
    NB_E_SYSTEM = 10,        // a system call of the boot sequence failed
    NB_E_LIST_MISSING = 11,  // /env or /cmd cannot be opened or read
    NB_E_LIST_TOO_BIG = 12,  // over NB_LIST_MAX_BYTES or NB_LIST_MAX_ITEMS
    NB_E_LIST_FORMAT = 13,   // NUL byte, no final newline, env line without NAME=
    NB_E_CMD_EMPTY = 14,     // no argv[0] (or an empty one)
    NB_E_HB_CONNECT = 20,    // the heartbeat peer refused or is absent
    NB_E_HB_TIMEOUT = 21,    // no answer within NB_HB_TIMEOUT_MS
    NB_E_HB_CLOSED = 22,     // the peer closed before answering
    NB_E_HB_WRONG = 23,      // the answer is not NB_HB_BYTE
};

struct nb_list {
    char buf[NB_LIST_MAX_BYTES + 1];
    char *items[NB_LIST_MAX_ITEMS + 1];  // NULL-terminated
    size_t count;
};

static struct nb_list nb_env, nb_cmd;

static void nb_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void nb_log(const char *fmt, ...) {
    char line[512];
    int n = snprintf(line, sizeof line, "nb-init: ");
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2) {
        len = sizeof line - 2;
    }
    line[len++] = '\n';
    ssize_t w = write(2, line, len);
    (void)w;
}

// The end of every run (§13.5): a reset, which ends a Nitro enclave and, with -no-reboot,
// QEMU; a power off would only halt a kernel without ACPI. The test build exits with CODE.
static _Noreturn void nb_end(int code) {
#ifdef NB_INIT_TEST
    exit(code);
#else
    (void)code;
    sync();
    reboot(RB_AUTOBOOT);
    nb_log("fatal: reboot: %s", strerror(errno));
    _exit(1);  // PID 1 exiting makes the kernel panic (and panic=N resets): loud, not a hang
#endif
}

static _Noreturn void nb_fail(enum nb_fail code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static _Noreturn void nb_fail(enum nb_fail code, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    nb_log("fatal [E%d]: %s", (int)code, msg);
    nb_end(code);
}

// Reads PATH into list->buf and splits it into lines (§13.3). Every line ends with '\n';
// env skips empty lines and requires NAME=, cmd keeps empty lines (empty arguments).
static void nb_read_list(struct nb_list *list, const char *path, int is_env) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        nb_fail(NB_E_LIST_MISSING, "%s: %s", path, strerror(errno));
    }
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, list->buf + len, sizeof list->buf - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            nb_fail(NB_E_LIST_MISSING, "%s: %s", path, strerror(errno));
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
        if (len > NB_LIST_MAX_BYTES) {
            nb_fail(NB_E_LIST_TOO_BIG, "%s: larger than %d bytes", path, NB_LIST_MAX_BYTES);
        }
    }
    close(fd);
    if (memchr(list->buf, '\0', len) != NULL) {
        nb_fail(NB_E_LIST_FORMAT, "%s: contains a NUL byte", path);
    }
    if (len > 0 && list->buf[len - 1] != '\n') {
        nb_fail(NB_E_LIST_FORMAT, "%s: last line has no newline", path);
    }
    list->count = 0;
    size_t lineno = 0;
    for (char *line = list->buf; line < list->buf + len;) {
        char *nl = memchr(line, '\n', (size_t)(list->buf + len - line));
        *nl = '\0';
        lineno++;
        if (is_env && *line == '\0') {
            line = nl + 1;
            continue;
        }
        if (is_env && (line[0] == '=' || strchr(line, '=') == NULL)) {
            nb_fail(NB_E_LIST_FORMAT, "%s: line %zu is not NAME=value", path, lineno);
        }
        if (list->count == NB_LIST_MAX_ITEMS) {
            nb_fail(NB_E_LIST_TOO_BIG, "%s: more than %d items", path, NB_LIST_MAX_ITEMS);
        }
        list->items[list->count++] = line;
        line = nl + 1;
    }
    list->items[list->count] = NULL;
    if (!is_env && (list->count == 0 || list->items[0][0] == '\0')) {
        nb_fail(NB_E_CMD_EMPTY, "%s: no command", path);
    }
}

static long nb_ms_left(const struct timespec *deadline) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long ms = (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
    return ms < 0 ? 0 : ms;
}

// Waits for EVENTS on FD until DEADLINE; fails with NB_E_HB_TIMEOUT.
static void nb_hb_wait(int fd, short events, const struct timespec *deadline, const char *what) {
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int r = poll(&p, 1, (int)nb_ms_left(deadline));
        if (r > 0) {
            return;
        }
        if (r == 0) {
            nb_fail(NB_E_HB_TIMEOUT, "heartbeat: no %s within the timeout", what);
        }
        if (errno != EINTR) {
            nb_fail(NB_E_SYSTEM, "heartbeat: poll: %s", strerror(errno));
        }
    }
}

// Connects a non-blocking stream socket to ADDR before DEADLINE; returns the socket.
static int nb_hb_connect(const struct sockaddr *addr, socklen_t addrlen, long timeout_ms,
                         const struct timespec *deadline) {
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        nb_fail(NB_E_SYSTEM, "heartbeat: socket: %s", strerror(errno));
    }
    if (addr->sa_family == AF_VSOCK) {
        // vsock gives up on a connect after 2 s by default: let our deadline decide.
        struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
        (void)setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &tv, sizeof tv);
    }
    if (connect(fd, addr, addrlen) == 0) {
        return fd;
    }
    if (errno != EINPROGRESS && errno != EAGAIN) {
        nb_fail(NB_E_HB_CONNECT, "heartbeat: connect: %s", strerror(errno));
    }
    nb_hb_wait(fd, POLLOUT, deadline, "connection");
    int err = 0;
    socklen_t errlen = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0 || err != 0) {
        nb_fail(NB_E_HB_CONNECT, "heartbeat: connect: %s", strerror(err ? err : errno));
    }
    return fd;
}

// §13.4: connect, send 0xB7, read exactly one byte back, which MUST be 0xB7; the whole
// exchange within TIMEOUT_MS. The address (vsock, or a Unix socket in tests) is the only
// difference between the two builds.
static void nb_heartbeat(const struct sockaddr *addr, socklen_t addrlen, long timeout_ms) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000;
    }
    int fd = nb_hb_connect(addr, addrlen, timeout_ms, &deadline);
    unsigned char b = NB_HB_BYTE;
    for (;;) {
        ssize_t n = send(fd, &b, 1, MSG_NOSIGNAL);
        if (n == 1) {
            break;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            nb_hb_wait(fd, POLLOUT, &deadline, "room to send");
            continue;
        }
        nb_fail(NB_E_HB_CLOSED, "heartbeat: send: %s", n < 0 ? strerror(errno) : "short");
    }
    for (;;) {
        nb_hb_wait(fd, POLLIN, &deadline, "answer");
        ssize_t n = recv(fd, &b, 1, 0);
        if (n == 1) {
            break;
        }
        if (n == 0) {
            nb_fail(NB_E_HB_CLOSED, "heartbeat: the peer closed without answering");
        }
        if (errno == ECONNRESET || errno == EPIPE) {
            nb_fail(NB_E_HB_CLOSED, "heartbeat: recv: %s", strerror(errno));
        }
        if (errno != EAGAIN && errno != EINTR) {
            nb_fail(NB_E_SYSTEM, "heartbeat: recv: %s", strerror(errno));
        }
    }
    if (b != NB_HB_BYTE) {
        nb_fail(NB_E_HB_WRONG, "heartbeat: answer 0x%02X, expected 0x%02X", b, NB_HB_BYTE);
    }
    close(fd);
}

static int nb_status_code(int status) {
    if (WIFEXITED(status)) {
        nb_log("command exited with status %d", WEXITSTATUS(status));
        return WEXITSTATUS(status);
    }
    nb_log("command killed by signal %d", WTERMSIG(status));
    return 128 + WTERMSIG(status);
}

// §13.2 steps 9-10: the command in its own session, with exactly /env as its environment;
// PID 1 reaps every child and forwards SIGTERM/SIGINT as SIGTERM to the command's group.
// Returns the command's exit code (128 + signal when killed). All signals are blocked.
static int nb_supervise(char **argv, char **envp) {
    pid_t pid = fork();
    if (pid < 0) {
        nb_fail(NB_E_SYSTEM, "fork: %s", strerror(errno));
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        setsid();
        clearenv();
        for (char **e = envp; *e != NULL; e++) {
            putenv(*e);  // a later NAME= wins, as in a shell
        }
        execvp(argv[0], argv);  // searches PATH from /env (or /bin:/usr/bin without one)
        nb_log("exec %s: %s", argv[0], strerror(errno));
        _exit(127);
    }
    sigset_t wanted;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGCHLD);
    sigaddset(&wanted, SIGTERM);
    sigaddset(&wanted, SIGINT);
    for (;;) {
        int sig = sigwaitinfo(&wanted, NULL);
        if (sig == SIGTERM || sig == SIGINT) {
            nb_log("signal %d: sending SIGTERM to the command", sig);
            if (kill(-pid, SIGTERM) < 0) {
                kill(pid, SIGTERM);  // not yet a group leader: setsid() still to come
            }
            continue;
        }
        if (sig != SIGCHLD) {
            continue;  // EINTR
        }
        int status;
        pid_t done;
        while ((done = waitpid(-1, &status, WNOHANG)) > 0) {
            if (done == pid) {
                return nb_status_code(status);
            }
        }
    }
}

static void nb_block_signals(void) {
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
}

#ifndef NB_INIT_TEST

static void nb_mkdir(const char *path) {
    if (mkdir(path, 0755) < 0 && errno != EEXIST) {
        nb_fail(NB_E_SYSTEM, "mkdir %s: %s", path, strerror(errno));
    }
}

static void nb_mount(const char *type, const char *target, unsigned long flags, const char *data) {
    nb_mkdir(target);
    if (mount(type, target, type, flags, data) < 0) {
        nb_fail(NB_E_SYSTEM, "mount %s on %s: %s", type, target, strerror(errno));
    }
}

// §13.2 step 1-2: devtmpfs (already there with CONFIG_DEVTMPFS_MOUNT) and the console.
static void nb_dev_console(void) {
    if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID | MS_NOEXEC, NULL) < 0 && errno != EBUSY) {
        nb_fail(NB_E_SYSTEM, "mount devtmpfs on /dev: %s", strerror(errno));
    }
    int fd = open("/dev/console", O_RDWR | O_NOCTTY);
    if (fd < 0) {
        nb_fail(NB_E_SYSTEM, "open /dev/console: %s", strerror(errno));
    }
    for (int i = 0; i < 3; i++) {
        if (fd != i && dup2(fd, i) < 0) {
            nb_fail(NB_E_SYSTEM, "dup2 console: %s", strerror(errno));
        }
    }
    if (fd > 2) {
        close(fd);
    }
}

// §13.2 step 3: /nsm.ko when it is not empty (an empty file: the driver is built in).
static void nb_nsm(void) {
    int fd = open("/nsm.ko", O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0) {
        // EEXIST: already loaded; ENOSYS: no module support, so the driver must be built in
        // (the /dev/nsm check below decides).
        if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST) {
            if (errno != ENOSYS) {
                nb_fail(NB_E_SYSTEM, "load /nsm.ko: %s", strerror(errno));
            }
            nb_log("warning: /nsm.ko not loaded: the kernel has no module support");
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    if (access("/dev/nsm", F_OK) < 0) {
        nb_fail(NB_E_SYSTEM, "/dev/nsm: %s (no NSM driver or device)", strerror(errno));
    }
}

// §13.2 step 6: the mounts the command sees, made before the chroot.
static void nb_mount_rootfs(void) {
    const unsigned long base = MS_NOSUID | MS_NODEV;
    nb_mount("proc", "/rootfs/proc", base | MS_NOEXEC, NULL);
    nb_mount("sysfs", "/rootfs/sys", base | MS_NOEXEC, NULL);
    nb_mount("devtmpfs", "/rootfs/dev", MS_NOSUID | MS_NOEXEC, NULL);
    nb_mount("devpts", "/rootfs/dev/pts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620");
    nb_mount("tmpfs", "/rootfs/dev/shm", base, "mode=1777");
    nb_mount("tmpfs", "/rootfs/run", base, "mode=0755");
    nb_mount("tmpfs", "/rootfs/tmp", base, "mode=1777");
    // Without cgroup support in the kernel there is nothing to mount: say so and go on.
    if (mount("cgroup2", "/rootfs/sys/fs/cgroup", "cgroup2", base | MS_NOEXEC, NULL) < 0) {
        if (errno != ENODEV && errno != ENOENT) {
            nb_fail(NB_E_SYSTEM, "mount cgroup2: %s", strerror(errno));
        }
        nb_log("warning: no cgroup2 (%s)", strerror(errno));
    }
    static const char *const links[][2] = {
        {"/proc/self/fd", "/rootfs/dev/fd"},
        {"/proc/self/fd/0", "/rootfs/dev/stdin"},
        {"/proc/self/fd/1", "/rootfs/dev/stdout"},
        {"/proc/self/fd/2", "/rootfs/dev/stderr"},
    };
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        if (symlink(links[i][0], links[i][1]) < 0 && errno != EEXIST) {
            nb_fail(NB_E_SYSTEM, "symlink %s: %s", links[i][1], strerror(errno));
        }
    }
}

// §13.2 step 7: the server relays KMS over 127.0.0.1.
static void nb_loopback_up(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
        nb_fail(NB_E_SYSTEM, "loopback: %s", strerror(errno));
    }
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) {
        nb_fail(NB_E_SYSTEM, "loopback up: %s", strerror(errno));
    }
    close(fd);
}

int main(void) {
    nb_block_signals();
    nb_dev_console();
    nb_nsm();
    struct sockaddr_vm vm = {.svm_family = AF_VSOCK, .svm_cid = NB_HB_CID, .svm_port = NB_HB_PORT};
    nb_heartbeat((const struct sockaddr *)&vm, sizeof vm, NB_HB_TIMEOUT_MS);
    nb_read_list(&nb_env, "/env", 1);
    nb_read_list(&nb_cmd, "/cmd", 0);
    nb_mount_rootfs();
    nb_loopback_up();
    if (chroot("/rootfs") < 0 || chdir("/") < 0) {
        nb_fail(NB_E_SYSTEM, "chroot /rootfs: %s", strerror(errno));
    }
    (void)nb_supervise(nb_cmd.items, nb_env.items);
    nb_end(0);
}

#else  // NB_INIT_TEST: see §13.6

static void nb_print_list(const struct nb_list *list) {
    for (size_t i = 0; i < list->count; i++) {
        printf("%s\n", list->items[i]);
    }
}

int main(int argc, char **argv) {
    nb_block_signals();
    if (argc == 3 && strcmp(argv[1], "env") == 0) {
        nb_read_list(&nb_env, argv[2], 1);
        nb_print_list(&nb_env);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "cmd") == 0) {
        nb_read_list(&nb_cmd, argv[2], 0);
        nb_print_list(&nb_cmd);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "heartbeat") == 0) {
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        if (strlen(argv[2]) >= sizeof un.sun_path) {
            return 2;
        }
        strcpy(un.sun_path, argv[2]);
        nb_heartbeat((const struct sockaddr *)&un, sizeof un, atol(argv[3]));
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "run") == 0) {
        nb_read_list(&nb_env, argv[2], 1);
        nb_read_list(&nb_cmd, argv[3], 0);
        prctl(PR_SET_CHILD_SUBREAPER, 1);  // orphans come back to us, as to PID 1
        return nb_supervise(nb_cmd.items, nb_env.items);
    }
    fprintf(stderr, "usage: init-test env F | cmd F | heartbeat SOCKET MS | run ENV CMD\n");
    return 2;
}

#endif
