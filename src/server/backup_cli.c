/* backup_cli: `raftkv snapshot save|status|restore` (docs/OPERATIONS.md,
 * "Backups") — fetching a backup from a running member with libcurl and
 * writing it atomically, describing a backup file, and building the data
 * dir of a member of a new cluster from one.
 *
 * Must never: leave a partial file under the name asked for, use a backup
 * whose trailer, checksum or rows do not verify, or write into a data dir
 * that already exists.
 */
#include "server/backup_cli.h"

#include "kv/kv.h"
#include "server/config.h"
#include "util/util.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "usage: raftkv snapshot save --endpoint URL [--cacert F] [--cert F --key F]\n"
    "                            [--user NAME:PASSWORD] FILE\n"
    "       raftkv snapshot status [-w json] FILE\n"
    "       raftkv snapshot restore FILE --id N --cluster URLS --data-dir DIR\n"
    "                            [--initial-cluster-token T]\n";

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("raftkv snapshot: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

/* "--name value" pairs and one positional argument. */
typedef struct {
    const char *names[8];
    const char *values[8];
    size_t n;
    const char *file;
} args;

static int parse_args(int argc, char **argv, const char *const *known, args *a)
{
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        if (argv[i][0] != '-') {
            if (a->file) {
                fprintf(stderr, "raftkv snapshot: one FILE only\n%s", usage);
                return -1;
            }
            a->file = argv[i];
            continue;
        }
        size_t k = 0;
        while (known[k] && strcmp(known[k], argv[i]) != 0)
            k++;
        if (!known[k] || i + 1 >= argc || a->n == 8) {
            fprintf(stderr, "raftkv snapshot: unknown or incomplete option %s\n%s", argv[i], usage);
            return -1;
        }
        a->names[a->n] = known[k];
        a->values[a->n++] = argv[++i];
    }
    if (!a->file) {
        fprintf(stderr, "raftkv snapshot: FILE is required\n%s", usage);
        return -1;
    }
    return 0;
}

static const char *arg(const args *a, const char *name)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->names[i], name) == 0)
            return a->values[i];
    return NULL;
}

/* ---- save ---- */

static size_t write_cb(char *p, size_t size, size_t n, void *ud)
{
    int fd = *(int *)ud;
    size_t len = size * n;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, p + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return 0;
        off += (size_t)w;
    }
    return len;
}

static void set_tls(CURL *c, const args *a)
{
    const char *v;
    if ((v = arg(a, "--cacert")))
        curl_easy_setopt(c, CURLOPT_CAINFO, v);
    if ((v = arg(a, "--cert")))
        curl_easy_setopt(c, CURLOPT_SSLCERT, v);
    if ((v = arg(a, "--key")))
        curl_easy_setopt(c, CURLOPT_SSLKEY, v);
    if ((v = arg(a, "--user"))) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERPWD, v);
    }
}

/* GET endpoint/maintenance/snapshot into fd; the HTTP status, or -1. */
static long fetch(const args *a, const char *endpoint, int fd)
{
    char url[2048];
    size_t n = strlen(endpoint);
    snprintf(url, sizeof url, "%.*s/maintenance/snapshot", (int)(n && endpoint[n - 1] == '/' ? n - 1 : n),
             endpoint);
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &fd);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    set_tls(c, a);
    long status = -1;
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else
        fail("%s: %s", url, curl_easy_strerror(rc));
    curl_easy_cleanup(c);
    return status;
}

static void print_error_body(const char *path)
{
    char body[512] = "";
    FILE *f = fopen(path, "r");
    size_t got = f ? fread(body, 1, sizeof body - 1, f) : 0;
    if (f)
        fclose(f);
    body[got] = '\0';
    fprintf(stderr, "raftkv snapshot: the member answered: %s\n", body);
}

static int save(int argc, char **argv)
{
    static const char *const known[] = {"--endpoint", "--cacert", "--cert", "--key", "--user", NULL};
    args a;
    if (parse_args(argc, argv, known, &a) < 0)
        return 2;
    const char *endpoint = arg(&a, "--endpoint");
    if (!endpoint)
        return fail("save: --endpoint URL is required"), 2;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.part-%ld", a.file, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return fail("%s: %s", tmp, strerror(errno));
    long status = fetch(&a, endpoint, fd);
    int rc = status == 200 ? 0 : 1;
    if (status > 0 && status != 200)
        print_error_body(tmp);
    if (rc == 0 && fsync(fd) < 0)
        rc = fail("%s: %s", tmp, strerror(errno));
    close(fd);
    char err[512] = "";
    if (rc == 0 && kv_backup_extract(tmp, NULL, err, sizeof err) != KV_OK)
        rc = fail("the backup received does not verify: %s", err);
    if (rc == 0 && rename(tmp, a.file) < 0)
        rc = fail("%s: %s", a.file, strerror(errno));
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    char *dup = xstrdup(a.file);
    if (!dup || fsync_path(dirname(dup)) < 0)
        rc = fail("%s: cannot make the directory entry durable", a.file);
    free(dup);
    struct stat sb;
    if (rc == 0 && stat(a.file, &sb) == 0)
        printf("saved %s (%lld bytes)\n", a.file, (long long)sb.st_size);
    return rc;
}

/* ---- status and restore: the backup's database, verified into a kv ---- */

static void remove_db_files(const char *dir)
{
    static const char *const names[] = {"kv.db", "kv.db-wal", "kv.db-shm", "kv.db.restore"};
    char path[4200];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
}

/* Opens dir/kv.db (new) holding the backup's state, every row verified. */
static int load_backup(const char *file, const char *dir, kv **out)
{
    char in[4200], db[4200], err[512] = "";
    snprintf(in, sizeof in, "%s/kv.db.restore", dir);
    snprintf(db, sizeof db, "%s/kv.db", dir);
    *out = NULL;
    if (kv_backup_extract(file, in, err, sizeof err) != KV_OK)
        return fail("%s", err);
    int rc = 0;
    if (kv_open(db, out, err, sizeof err) != KV_OK)
        rc = fail("%s: %s", db, err);
    else if (kv_restore(*out, in, err, sizeof err) != KV_OK)
        rc = fail("%s: %s", file, err);
    unlink(in);
    if (rc && *out) {
        kv_close(*out);
        *out = NULL;
    }
    return rc;
}

typedef struct {
    int64_t revision, compact, keys;
    uint32_t hash;
} facts;

static int read_facts(kv *k, facts *f)
{
    kv_conn *c = kv_reader_acquire(k);
    if (!c)
        return -1;
    static const uint8_t zero = 0;
    kv_op all = {.type = KV_OP_RANGE, .span = {&zero, 1, true, &zero, 1}, .count_only = true};
    kv_op_result res;
    memset(&res, 0, sizeof res);
    int64_t hrev = 0, hash_rev = 0;
    int rc = kv_range(c, &all, &res, &hrev) == KV_OK &&
                     kv_hash(c, 0, &f->hash, &f->compact, &hash_rev) == KV_OK
                 ? 0
                 : -1;
    f->keys = res.count;
    f->revision = hash_rev;
    kv_list_free(&res.kvs);
    kv_reader_release(k, c);
    return rc;
}

static int status(int argc, char **argv)
{
    static const char *const known[] = {"-w", NULL};
    args a;
    if (parse_args(argc, argv, known, &a) < 0)
        return 2;
    const char *w = arg(&a, "-w");
    if (w && strcmp(w, "json") != 0 && strcmp(w, "simple") != 0)
        return fail("-w: expected json or simple"), 2;
    char dir[] = "/tmp/raftkv-snapshot-status.XXXXXX";
    if (!mkdtemp(dir))
        return fail("mkdtemp: %s", strerror(errno));
    kv *k;
    int rc = load_backup(a.file, dir, &k);
    facts f;
    struct stat sb;
    if (rc == 0 && (read_facts(k, &f) < 0 || stat(a.file, &sb) < 0))
        rc = fail("%s: cannot read the backup's state", a.file);
    if (rc == 0 && w && strcmp(w, "json") == 0)
        printf("{\"revision\":%" PRId64 ",\"compact_revision\":%" PRId64 ",\"keys\":%" PRId64
               ",\"size\":%lld,\"hash\":%u}\n",
               f.revision, f.compact, f.keys, (long long)sb.st_size, (unsigned)f.hash);
    else if (rc == 0)
        printf("revision %" PRId64 "\ncompact_revision %" PRId64 "\nkeys %" PRId64
               "\nsize %lld\nhash %u\n",
               f.revision, f.compact, f.keys, (long long)sb.st_size, (unsigned)f.hash);
    kv_close(k);
    remove_db_files(dir);
    rmdir(dir);
    return rc;
}

/* --id and --cluster as the node will get them (config.c's rules). */
static int check_member_flags(const args *a)
{
    const char *id = arg(a, "--id"), *cluster = arg(a, "--cluster");
    if (!id || !cluster || !arg(a, "--data-dir"))
        return fail("restore: --id, --cluster and --data-dir are required"), -1;
    char *copy = xstrdup(cluster), *save = NULL;
    size_t n = 0;
    int rc = copy ? 0 : -1;
    for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t; t = strtok_r(NULL, ",", &save)) {
        char host[256];
        uint16_t port;
        if (config_split_url(t, host, sizeof host, &port) < 0) {
            fail("restore: --cluster: \"%s\" is not http(s)://host:port", t);
            rc = -1;
        }
        n++;
    }
    free(copy);
    char *end;
    unsigned long v = strtoul(id, &end, 10);
    if (rc == 0 && (*end || v == 0 || v > n)) {
        fail("restore: --id %s: --cluster lists %zu peers", id, n);
        rc = -1;
    }
    return rc;
}

static int restore(int argc, char **argv)
{
    static const char *const known[] = {"--id", "--cluster", "--data-dir",
                                        "--initial-cluster-token", NULL};
    args a;
    if (parse_args(argc, argv, known, &a) < 0 || check_member_flags(&a) < 0)
        return 2;
    const char *dir = arg(&a, "--data-dir");
    if (mkdir(dir, 0700) < 0)
        return fail("restore: --data-dir %s: %s (it must not exist yet)", dir,
                    errno == EEXIST ? "exists" : strerror(errno));
    kv *k;
    int rc = load_backup(a.file, dir, &k);
    int64_t rev = rc == 0 ? kv_revision(k) : 0;
    if (rc == 0 && kv_backup_reset(k) != KV_OK)
        rc = fail("restore: cannot reset the membership of %s/kv.db", dir);
    kv_close(k);
    if (rc == 0 && fsync_path(dir) < 0)
        rc = fail("restore: %s: %s", dir, strerror(errno));
    if (rc != 0) {
        remove_db_files(dir);
        rmdir(dir);
        return rc;
    }
    const char *token = arg(&a, "--initial-cluster-token");
    printf("restored revision %" PRId64 " into %s; start this member with\n"
           "  raftkv --id %s --cluster %s --data-dir %s%s%s --port PORT\n"
           "(every member of the new cluster with the same --cluster%s)\n",
           rev, dir, arg(&a, "--id"), arg(&a, "--cluster"), dir,
           token ? " --initial-cluster-token " : "", token ? token : "",
           token ? " and token" : "");
    return 0;
}

int backup_cli_main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "save") == 0)
        return save(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "status") == 0)
        return status(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "restore") == 0)
        return restore(argc - 2, argv + 2);
    fputs(usage, argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
    return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
}
