// The walk's directory scanner: one call lists a directory and returns every entry's lstat fields and
// symlink target in two buffers. Node has no fstatat, so the JavaScript walk resolves each path from
// the root and builds a stats object per entry (lstat and the garbage it makes were 30 % of a
// no-change re-snapshot); here each entry costs one statx relative to the open directory.
//
// Built by scripts/build.sh for x64 and arm64 into dist/native/. It calls statx and getdents through
// syscall(2) and uses no glibc symbol newer than 2.17, so one build loads on every glibc runner
// (glibc 2.33 renamed the stat family; statx needs Linux 4.11, else the JavaScript walk runs).
#define _GNU_SOURCE // qsort_r
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/limits.h>
#include <linux/stat.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

// Numbers per entry in the fields array; the order is read by src/walk/directory.ts.
enum {
  F_MODE, F_UID, F_GID, F_NLINK, F_SIZE, F_BLOCKS,
  F_MTIME_SEC, F_MTIME_NSEC, F_CTIME_SEC, F_CTIME_NSEC,
  F_INO_HI, F_INO_LO, F_DEV_HI, F_DEV_LO, F_RDEV_MAJOR, F_RDEV_MINOR,
  F_ERRNO, F_NAME_AT, F_NAME_LEN, F_TARGET_AT, F_TARGET_LEN,
  FIELDS
};

struct linux_dirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[];
};

/** A growable byte buffer. */
struct bytes {
  char *data;
  size_t len, cap;
};

static int reserve(struct bytes *b, size_t more) {
  if (b->len + more <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 64 * 1024;
  while (cap < b->len + more) cap *= 2;
  char *data = realloc(b->data, cap);
  if (!data) return ENOMEM;
  b->data = data;
  b->cap = cap;
  return 0;
}

/** glibc's makedev: what lstat's st_dev holds, so that `dev:ino` matches Node's. */
static uint64_t make_dev(uint32_t major, uint32_t minor) {
  return ((uint64_t)(major & 0xfffff000u) << 32) | ((uint64_t)(major & 0xfffu) << 8) |
         ((uint64_t)(minor & 0xffffff00u) << 12) | (uint64_t)(minor & 0xffu);
}

static int by_name(const void *a, const void *b, void *names) {
  // strcmp compares bytes as unsigned char: the order of the walk's latin1 names.
  return strcmp((const char *)names + *(const uint32_t *)a, (const char *)names + *(const uint32_t *)b);
}

/** Reads the names of the open directory `fd` (NUL-ended, into `names`) and their offsets. */
static int read_names(int fd, struct bytes *names, struct bytes *offsets) {
  char buf[32 * 1024];
  for (;;) {
    long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (n < 0) return errno;
    if (n == 0) return 0;
    for (long at = 0; at < n;) {
      struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + at);
      at += d->d_reclen;
      const char *name = d->d_name;
      if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
      size_t len = strlen(name) + 1;
      uint32_t offset = (uint32_t)names->len;
      if (reserve(names, len) || reserve(offsets, sizeof offset)) return ENOMEM;
      memcpy(names->data + names->len, name, len);
      names->len += len;
      memcpy(offsets->data + offsets->len, &offset, sizeof offset);
      offsets->len += sizeof offset;
    }
  }
}

/** Fills one entry's fields from statx (and its target, for a symlink, into `targets`). */
static void stat_entry(int fd, const char *name, double *f, struct bytes *targets) {
  struct statx st;
  f[F_TARGET_LEN] = -1;
  long r = syscall(SYS_statx, fd, name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_BASIC_STATS, &st);
  if (r < 0) {
    f[F_ERRNO] = errno;
    return;
  }
  f[F_ERRNO] = 0;
  f[F_MODE] = st.stx_mode;
  f[F_UID] = st.stx_uid;
  f[F_GID] = st.stx_gid;
  f[F_NLINK] = st.stx_nlink;
  f[F_SIZE] = (double)st.stx_size;
  f[F_BLOCKS] = (double)st.stx_blocks;
  f[F_MTIME_SEC] = (double)st.stx_mtime.tv_sec;
  f[F_MTIME_NSEC] = st.stx_mtime.tv_nsec;
  f[F_CTIME_SEC] = (double)st.stx_ctime.tv_sec;
  f[F_CTIME_NSEC] = st.stx_ctime.tv_nsec;
  f[F_INO_HI] = (double)(st.stx_ino >> 32);
  f[F_INO_LO] = (double)(st.stx_ino & 0xffffffffu);
  uint64_t dev = make_dev(st.stx_dev_major, st.stx_dev_minor);
  f[F_DEV_HI] = (double)(dev >> 32);
  f[F_DEV_LO] = (double)(dev & 0xffffffffu);
  f[F_RDEV_MAJOR] = st.stx_rdev_major;
  f[F_RDEV_MINOR] = st.stx_rdev_minor;
  if ((st.stx_mode & S_IFMT) != S_IFLNK) return;
  if (reserve(targets, PATH_MAX)) {
    f[F_ERRNO] = ENOMEM;
    return;
  }
  ssize_t len = readlinkat(fd, name, targets->data + targets->len, PATH_MAX);
  if (len < 0) {
    f[F_ERRNO] = errno;
    return;
  }
  f[F_TARGET_AT] = (double)targets->len;
  f[F_TARGET_LEN] = (double)len;
  targets->len += (size_t)len;
}

/**
 * scan(path: Buffer): [names: Buffer, fields: Float64Array, targets: Buffer] for the directory at
 * `path`, entries sorted by name bytes; or a number, the errno of opening or reading it.
 */
static napi_value scan(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out = NULL;
  char *path;
  size_t path_len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 1 ||
      napi_get_buffer_info(env, argv[0], (void **)&path, &path_len) != napi_ok) {
    napi_throw_type_error(env, NULL, "scan(path: Buffer)");
    return NULL;
  }
  char *cpath = malloc(path_len + 1);
  if (!cpath) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  memcpy(cpath, path, path_len);
  cpath[path_len] = 0;
  struct bytes names = {0}, offsets = {0}, targets = {0};
  int err = 0;
  int fd = open(cpath, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  free(cpath);
  if (fd < 0) err = errno;
  if (!err) err = read_names(fd, &names, &offsets);
  if (err) {
    if (fd >= 0) close(fd);
    free(names.data);
    free(offsets.data);
    napi_create_int32(env, err, &out);
    return out;
  }
  size_t count = offsets.len / sizeof(uint32_t);
  uint32_t *order = (uint32_t *)offsets.data;
  if (count > 1) qsort_r(order, count, sizeof *order, by_name, names.data);

  napi_value fields_buffer, fields, names_js, targets_js;
  double *f;
  if (napi_create_arraybuffer(env, count * FIELDS * sizeof(double), (void **)&f, &fields_buffer) != napi_ok)
    goto done;
  for (size_t i = 0; i < count; i++, f += FIELDS) {
    const char *name = names.data + order[i];
    f[F_NAME_AT] = order[i];
    f[F_NAME_LEN] = (double)strlen(name);
    stat_entry(fd, name, f, &targets);
  }
  if (napi_create_typedarray(env, napi_float64_array, count * FIELDS, fields_buffer, 0, &fields) != napi_ok ||
      napi_create_buffer_copy(env, names.len, names.len ? names.data : "", NULL, &names_js) != napi_ok ||
      napi_create_buffer_copy(env, targets.len, targets.len ? targets.data : "", NULL, &targets_js) != napi_ok ||
      napi_create_array_with_length(env, 3, &out) != napi_ok)
    goto done;
  napi_set_element(env, out, 0, names_js);
  napi_set_element(env, out, 1, fields);
  napi_set_element(env, out, 2, targets_js);
done:
  close(fd);
  free(names.data);
  free(offsets.data);
  free(targets.data);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "scan", NAPI_AUTO_LENGTH, scan, NULL, &fn) == napi_ok)
    napi_set_named_property(env, exports, "scan", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
