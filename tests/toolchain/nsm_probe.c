// SPDX-License-Identifier: Apache-2.0
// Copyright the nitro-bundles authors
//
// Test PID 1 for tests/toolchain/test_qemu_nsm.py (specs/qemu-nsm.md §5): asks /dev/nsm twice
// for an attestation document (user_data "user", nonce 01..08, no public key) and prints each
// raw NSM response as one console line "NSMRESP <hex>", then ends QEMU. The machine has no
// ACPI and no i8042, so it cannot power off: the reboot type becomes "triple", a reset that
// `-no-reboot` turns into QEMU's exit (specs/qemu-nsm.md §6).
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

#define NSM_IOCTL_RAW 0xC0200A00u  // _IOWR(0x0A, 0, 32), specs/attestation.md §10.1

struct nsm_iovec {
    uint64_t addr, len;
};
struct nsm_raw {
    struct nsm_iovec request, response;
};

// {"Attestation": {"user_data": h'75736572', "nonce": h'0102030405060708', "public_key": null}}
static const unsigned char request[] = {
    0xa1, 0x6b, 'A', 't', 't', 'e', 's', 't', 'a', 't', 'i', 'o', 'n', 0xa3,
    0x69, 'u', 's', 'e', 'r', '_', 'd', 'a', 't', 'a', 0x44, 'u', 's', 'e', 'r',
    0x65, 'n', 'o', 'n', 'c', 'e', 0x48, 1, 2, 3, 4, 5, 6, 7, 8,
    0x6a, 'p', 'u', 'b', 'l', 'i', 'c', '_', 'k', 'e', 'y', 0xf6,
};
static unsigned char response[0x3000];

static void say(const char *s) {
    (void)!write(1, s, strlen(s));
}

static void attest(int fd) {
    struct nsm_raw raw = {
        {(uintptr_t)request, sizeof request},
        {(uintptr_t)response, sizeof response},
    };
    /* One write for the whole line, so no console output lands inside it. */
    static char line[8 + 2 * sizeof response + 2];
    static const char digits[] = "0123456789abcdef";
    size_t n = 0;
    if (ioctl(fd, NSM_IOCTL_RAW, &raw) < 0 || raw.response.len > sizeof response) {
        say("NSMFAIL ioctl\n");
        return;
    }
    memcpy(line, "NSMRESP ", 8);
    n = 8;
    for (uint64_t i = 0; i < raw.response.len; i++) {
        line[n++] = digits[response[i] >> 4];
        line[n++] = digits[response[i] & 15];
    }
    line[n++] = '\n';
    (void)!write(1, line, n);
}

static void end_qemu(void) {
    int fd;
    sync();
    mkdir("/sys", 0755);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    fd = open("/sys/kernel/reboot/type", O_WRONLY);
    if (fd >= 0) {
        (void)!write(fd, "triple", 6);
        close(fd);
    }
    reboot(RB_AUTOBOOT);
}

int main(void) {
    int fd;
    mkdir("/dev", 0755);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);  // an initramfs gets no automatic devtmpfs
    fd = open("/dev/console", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    fd = open("/dev/nsm", O_RDWR);
    if (fd < 0) {
        say("NSMFAIL open /dev/nsm\n");
    } else {
        attest(fd);
        attest(fd);
    }
    end_qemu();
    return 0;
}
