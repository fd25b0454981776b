/* SPDX-License-Identifier: Apache-2.0
 * Copyright the nitro-bundles authors
 *
 * The cheapest filesystem compiled code can serve through libfuse 3: the C twin of
 * `_noop_fuse.py` (names and sizes in a table, data discarded, one thread, cached
 * attributes and entries), on libfuse's low-level API. `bench_sync.py` builds it when
 * gcc and libfuse3's headers are present and copies the small-file tree into it too,
 * to show in the same run what a compiled FUSE hot path could reach at best (the
 * planning question in specs/sync.md §12). It is a measuring stick, not product code.
 *
 * Build: gcc -O2 -o noop_fuse _noop_fuse.c $(pkg-config --cflags --libs fuse3)
 * Usage: noop_fuse MOUNTPOINT  (serves in the foreground until unmounted)
 */
#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_NODES (1u << 20)
#define BUCKETS (1u << 21)

struct node {
    fuse_ino_t parent;
    char *name;
    mode_t mode;
    off_t size;
    unsigned next; /* hash chain */
};

static struct node *nodes;
static unsigned *buckets;
static unsigned count = 2; /* 0 unused, 1 = root */
static struct timespec now;

static unsigned hash(fuse_ino_t parent, const char *name) {
    unsigned h = 2166136261u ^ (unsigned)parent;
    for (; *name; name++) h = (h ^ (unsigned char)*name) * 16777619u;
    return h & (BUCKETS - 1);
}

static unsigned find(fuse_ino_t parent, const char *name) {
    for (unsigned i = buckets[hash(parent, name)]; i; i = nodes[i].next)
        if (nodes[i].parent == parent && strcmp(nodes[i].name, name) == 0) return i;
    return 0;
}

static unsigned add(fuse_ino_t parent, const char *name, mode_t mode) {
    if (count >= MAX_NODES) return 0;
    unsigned i = count++, h = hash(parent, name);
    nodes[i] = (struct node){parent, strdup(name), mode, 0, buckets[h]};
    buckets[h] = i;
    return i;
}

static void fill(unsigned i, struct stat *st) {
    memset(st, 0, sizeof *st);
    st->st_ino = i;
    st->st_mode = nodes[i].mode;
    st->st_nlink = 1;
    st->st_size = nodes[i].size;
    st->st_atim = st->st_mtim = st->st_ctim = now;
}

static void entry(unsigned i, struct fuse_entry_param *e) {
    memset(e, 0, sizeof *e);
    e->ino = i;
    e->attr_timeout = e->entry_timeout = 1.0;
    fill(i, &e->attr);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
    struct fuse_entry_param e;
    unsigned i = find(parent, name);
    if (!i) {
        memset(&e, 0, sizeof e);
        e.entry_timeout = 1.0; /* negative entry, cached like the Python twin's */
        fuse_reply_entry(req, &e);
        return;
    }
    entry(i, &e);
    fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    (void)fi;
    struct stat st;
    if (ino >= count) { fuse_reply_err(req, ENOENT); return; }
    fill(ino, &st);
    fuse_reply_attr(req, &st, 1.0);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
    struct fuse_entry_param e;
    unsigned i = add(parent, name, S_IFDIR | (mode & 07777));
    if (!i) { fuse_reply_err(req, ENOSPC); return; }
    entry(i, &e);
    fuse_reply_entry(req, &e);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi) {
    struct fuse_entry_param e;
    unsigned i = add(parent, name, S_IFREG | (mode & 07777));
    if (!i) { fuse_reply_err(req, ENOSPC); return; }
    entry(i, &e);
    fi->fh = i;
    fuse_reply_create(req, &e, fi);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi) {
    (void)buf; (void)fi;
    if ((off_t)(off + size) > nodes[ino].size) nodes[ino].size = off + size;
    fuse_reply_write(req, size);
}

static const struct fuse_lowlevel_ops ops = {
    .lookup = op_lookup,
    .getattr = op_getattr,
    .mkdir = op_mkdir,
    .create = op_create,
    .write = op_write,
};

int main(int argc, char *argv[]) {
    if (argc != 2) { fprintf(stderr, "usage: %s MOUNTPOINT\n", argv[0]); return 2; }
    nodes = calloc(MAX_NODES, sizeof *nodes);
    buckets = calloc(BUCKETS, sizeof *buckets);
    clock_gettime(CLOCK_REALTIME, &now);
    nodes[1] = (struct node){1, strdup(""), S_IFDIR | 0755, 0, 0};
    char *fargv[] = {argv[0], "-o", "fsname=noop", NULL};
    struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
    struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, NULL);
    if (!se || fuse_session_mount(se, argv[1]) != 0) return 1;
    int rc = fuse_session_loop(se);
    fuse_session_unmount(se);
    fuse_session_destroy(se);
    return rc ? 1 : 0;
}
