// SPDX-License-Identifier: Apache-2.0
// Copyright the nitro-bundles authors
//
// The sync mount's compiled hot path: getattr, and a fresh file's writes (specs/sync.md §8.1).
//
// Four of the ~7 FUSE callbacks a small file costs are getattr (three: the negative lookup
// of its name, its folder, the file after create) and its one write. Through mfusepy each
// is a ctypes callback into Python; here libfuse calls C, and C hands to the Python
// callback whatever it does not answer itself.
//
// getattr answers from the backing store exactly as `SyncOperations.attrs` does (fstatat
// of the same path, the same fields); Python keeps paths inside output/ (the enclave's),
// paths the checks of `split_path` would refuse (Python raises their errno), a NULL path,
// and any moment the write queue holds store writes not yet done (sizes must include them).
//
// write answers only for a handle Python registered as `fresh` (created, nothing sent to
// the enclave yet, sync.md §6) and a write that ends within the inline size: exactly the
// case where Python's write only puts the bytes into the store file. Python unregisters
// the handle (under the slot's lock, so after any write in progress) before it first reads
// the file's bytes to send them, and before it closes the descriptor.
//
// No Python API and no libfuse header: libfuse 3's high-level getattr is
// int (*)(const char *, struct stat *, struct fuse_file_info *) and write
// int (*)(const char *, const char *, size_t, off_t, struct fuse_file_info *); the offset
// of `fh` in fuse_file_info comes from mfusepy's declaration. Loaded with ctypes
// (user_runtime/sync/fastpath.py).

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef int (*nb_getattr_fn)(const char *, struct stat *, void *);
typedef int (*nb_write_fn)(const char *, const char *, size_t, off_t, void *);

// Registered fresh handles, by fh modulo SLOTS; a taken slot leaves the next one to Python.
#define SLOTS 4096
struct slot {
    pthread_mutex_t lock;
    uint64_t fh;  // 0: free (Python's handles count from 1)
    int fd;
};
static struct slot slots[SLOTS];
static nb_write_fn write_fallback;
static size_t fh_offset;
static long inline_bytes;
static atomic_long written;  // writes answered here

static int tree_fd = -1;
static nb_getattr_fn fallback;
static atomic_long local_writes;  // queued store writes not yet done (writes.py `_local`)
static atomic_long answered;      // getattr calls answered here (tests, benchmarks)
static char output_name[256];
static size_t output_len;
static size_t max_name, max_path, max_depth;
static long block_size;
static uid_t owner_uid;
static gid_t owner_gid;

int nb_fast_configure(int fd, nb_getattr_fn python, const char *output, long io_size,
                      long name_bytes, long path_bytes, long depth) {
    size_t len = strlen(output);
    if (fd < 0 || python == NULL || len == 0 || len >= sizeof output_name) {
        return -EINVAL;
    }
    memcpy(output_name, output, len + 1);
    output_len = len;
    block_size = io_size;
    max_name = (size_t)name_bytes;
    max_path = (size_t)path_bytes;
    max_depth = (size_t)depth;
    owner_uid = getuid();
    owner_gid = getgid();
    fallback = python;
    tree_fd = fd;
    return 0;
}

void nb_fast_hold(void) { atomic_fetch_add(&local_writes, 1); }

void nb_fast_release(void) { atomic_fetch_sub(&local_writes, 1); }

long nb_fast_answered(void) { return atomic_load(&answered); }

long nb_fast_written(void) { return atomic_load(&written); }

int nb_fast_configure_write(nb_write_fn python, long fh_at, long inline_size) {
    if (python == NULL || fh_at < 0 || inline_size < 0) {
        return -EINVAL;
    }
    for (size_t i = 0; i < SLOTS; i++) {
        pthread_mutex_init(&slots[i].lock, NULL);
        slots[i].fh = 0;
        slots[i].fd = -1;
    }
    fh_offset = (size_t)fh_at;
    inline_bytes = inline_size;
    write_fallback = python;
    return 0;
}

// 1 when C now answers this handle's writes, 0 when its slot is taken (Python answers).
int nb_fast_register(uint64_t fh, int fd) {
    struct slot *s = &slots[fh % SLOTS];
    int taken;
    pthread_mutex_lock(&s->lock);
    taken = s->fh != 0;
    if (!taken) {
        s->fh = fh;
        s->fd = fd;
    }
    pthread_mutex_unlock(&s->lock);
    return !taken;
}

// After this returns no write of `fh` is in progress here, and none will be.
void nb_fast_unregister(uint64_t fh) {
    struct slot *s = &slots[fh % SLOTS];
    pthread_mutex_lock(&s->lock);
    if (s->fh == fh) {
        s->fh = 0;
        s->fd = -1;
    }
    pthread_mutex_unlock(&s->lock);
}

int nb_fast_write(const char *path, const char *buf, size_t size, off_t offset, void *fi) {
    uint64_t fh;
    if (fi == NULL) {
        return write_fallback(path, buf, size, offset, fi);
    }
    memcpy(&fh, (const char *)fi + fh_offset, sizeof fh);
    struct slot *s = &slots[fh % SLOTS];
    pthread_mutex_lock(&s->lock);
    if (fh == 0 || s->fh != fh || offset < 0 || size > (size_t)inline_bytes ||
        offset > inline_bytes - (off_t)size) {
        pthread_mutex_unlock(&s->lock);
        return write_fallback(path, buf, size, offset, fi);
    }
    size_t done = 0;
    while (done < size) {  // store_write: all of it, or the error
        ssize_t n = pwrite(s->fd, buf + done, size - done, offset + (off_t)done);
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            pthread_mutex_unlock(&s->lock);
            return -e;
        }
        done += (size_t)n;
    }
    pthread_mutex_unlock(&s->lock);
    atomic_fetch_add(&written, 1);
    return (int)size;
}

// Whether `path` passes split_path's checks and lies outside output/ (store.py).
static int plain_store_path(const char *path) {
    size_t total = strlen(path);
    if (path[0] != '/' || total > max_path) {
        return 0;
    }
    if (total == 1) {
        return 1;  // the root
    }
    size_t depth = 0;
    const char *part = path + 1;
    for (;;) {
        const char *end = strchr(part, '/');
        size_t len = end ? (size_t)(end - part) : strlen(part);
        if (len == 0 || len > max_name || ++depth > max_depth) {
            return 0;
        }
        if ((len == 1 && part[0] == '.') || (len == 2 && part[0] == '.' && part[1] == '.')) {
            return 0;
        }
        if (depth == 1 && len == output_len && memcmp(part, output_name, len) == 0) {
            return 0;
        }
        if (!end) {
            return 1;
        }
        part = end + 1;
    }
}

int nb_fast_getattr(const char *path, struct stat *out, void *fi) {
    if (path == NULL || atomic_load(&local_writes) != 0 || !plain_store_path(path)) {
        return fallback(path, out, fi);
    }
    struct stat st;
    if (fstatat(tree_fd, path[1] ? path + 1 : ".", &st, AT_SYMLINK_NOFOLLOW) != 0) {
        return -errno;
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        return -ENOENT;
    }
    // The fields `fuse._fill_stat` sets, nothing else.
    memset(out, 0, sizeof *out);
    out->st_mode = st.st_mode;
    out->st_size = st.st_size;
    out->st_nlink = st.st_nlink;
    out->st_uid = owner_uid;
    out->st_gid = owner_gid;
    out->st_blksize = block_size;
    out->st_blocks = (st.st_size + 511) / 512;
    out->st_atim = st.st_atim;
    out->st_mtim = st.st_mtim;
    out->st_ctim = st.st_ctim;
    atomic_fetch_add(&answered, 1);
    return 0;
}
