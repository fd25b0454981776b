/* SPDX-License-Identifier: Apache-2.0 */
/* Copyright the nitro-bundles authors */
/* The guest's init for test_vsock_real_guest.py: the image-load heartbeat to CID 3 port
 * 9000, 64 MiB to CID 2 port 7000 (then read the host's answer), then accept two
 * connections on port 5000 and echo each, then power off. Prints "guest: ..." lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/reboot.h>
#include <linux/vm_sockets.h>

static int vconnect(unsigned cid, unsigned port) {
    int s = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port};
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); return -1; }
    return s;
}

int main(void) {
    char buf[65536];
    printf("guest: up\n"); fflush(stdout);
    int s = vconnect(3, 9000);
    if (s >= 0) {
        unsigned char b = 0xb7, r = 0;
        write(s, &b, 1);
        read(s, &r, 1);
        printf("guest: heartbeat %s\n", r == 0xb7 ? "ok" : "BAD"); fflush(stdout);
        close(s);
    }
    s = vconnect(2, 7000);
    if (s >= 0) {
        memset(buf, 'g', sizeof buf);
        long total = 0;
        for (int i = 0; i < 1024; i++) {  /* 64 MiB */
            long n = 0;
            while (n < (long)sizeof buf) { long w = write(s, buf + n, sizeof buf - n); if (w <= 0) { perror("write"); break; } n += w; }
            total += n;
        }
        shutdown(s, SHUT_WR);
        long back = 0; int n;
        while ((n = read(s, buf, sizeof buf)) > 0) back += n;
        printf("guest: sent %ld, host answered %ld\n", total, back); fflush(stdout);
        close(s);
    }
    int l = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = 5000};
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 8) < 0) perror("listen");
    printf("guest: listening on 5000\n"); fflush(stdout);
    for (int k = 0; k < 2; k++) {
        int c = accept(l, NULL, NULL);
        if (c < 0) { perror("accept"); break; }
        long got = 0; int n;
        while ((n = read(c, buf, sizeof buf)) > 0) {
            got += n;
            long w = 0; while (w < n) { long x = write(c, buf + w, n - w); if (x <= 0) break; w += x; }
        }
        printf("guest: echoed %ld\n", got); fflush(stdout);
        close(c);
    }
    printf("guest: done\n"); fflush(stdout);
    sync();
    reboot(RB_POWER_OFF);
    return 0;
}
