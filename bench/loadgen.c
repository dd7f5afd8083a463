/* The simulated fleet for B1 (cold start), compiled: N gRPC ADS streams, each on its own mTLS
 * connection with its own certificate, subscribing as Envoy does and as bench/simproxy.py does (CDS and
 * LDS by wildcard, then EDS, RDS and SDS by the names the clusters and listeners refer to) and ACKing
 * every response. One thread, epoll, OpenSSL, HTTP/2 framing as in bench/h2client.py.
 *
 * A Python fleet needs more CPU to receive a permissive mesh's cold start (about 2 GB to 2,000 proxies)
 * than the control plane needs to send it, so its core set the pace. This one reads the same responses
 * for the same names at a fraction of the cost.
 *
 * Usage: loadgen CONFIG. CONFIG is text: "host port server_name ca_file delta limit_s", then one line
 * per proxy: "cn cert_file key_file". Everything is loaded, then it waits for a line on stdin, opens
 * every stream at once and prints one JSON line: each proxy's completion time (seconds from the start,
 * or null), bytes and responses, the process's CPU seconds, the wall time and the first errors.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define T_CDS 0
#define T_EDS 1
#define T_LDS 2
#define T_RDS 3
#define T_SDS 4
#define NTYPES 5
static const char *TYPE_URL[NTYPES] = {
    "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
    "type.googleapis.com/envoy.config.listener.v3.Listener",
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret",
};
static const char *SOTW_PATH = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
static const char *DELTA_PATH = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

static void die(const char *what) {
    fprintf(stderr, "loadgen: %s\n", what);
    exit(2);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory");
    return p;
}

static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    if (!p) die("out of memory");
    return p;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- byte buffers */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} buf_t;

static void buf_reserve(buf_t *b, size_t extra) {
    if (b->len + extra > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + extra) cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
}

static void buf_add(buf_t *b, const void *data, size_t n) {
    buf_reserve(b, n);
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void buf_drop(buf_t *b, size_t n) { /* remove the first n bytes */
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

static void put_varint(buf_t *b, uint64_t v) {
    uint8_t tmp[10];
    int n = 0;
    while (v >= 0x80) {
        tmp[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (uint8_t)v;
    buf_add(b, tmp, n);
}

static void put_field(buf_t *b, int field, const void *data, size_t n) {
    put_varint(b, ((uint64_t)field << 3) | 2);
    put_varint(b, n);
    buf_add(b, data, n);
}

static void put_str(buf_t *b, int field, const char *s) { /* proto3: an empty string is left out */
    if (s && *s) put_field(b, field, s, strlen(s));
}

static int get_varint(const uint8_t *p, size_t end, size_t *pos, uint64_t *out) {
    uint64_t v = 0;
    int shift = 0;
    while (*pos < end && shift < 64) {
        uint8_t c = p[(*pos)++];
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return 0;
        }
        shift += 7;
    }
    return -1;
}

/* Walks the fields of p[start:end]: calls fn for each, length-delimited values as ranges, varints as
 * their value. Returns -1 on a malformed message. */
typedef void (*field_fn)(void *ctx, int field, int wt, const uint8_t *p, size_t start, size_t end, uint64_t v);

static int walk(const uint8_t *p, size_t start, size_t end, field_fn fn, void *ctx) {
    size_t pos = start;
    while (pos < end) {
        uint64_t key, v = 0;
        if (get_varint(p, end, &pos, &key)) return -1;
        int field = (int)(key >> 3), wt = (int)(key & 7);
        if (wt == 0) {
            if (get_varint(p, end, &pos, &v)) return -1;
            fn(ctx, field, wt, p, pos, pos, v);
        } else if (wt == 2) {
            uint64_t len;
            if (get_varint(p, end, &pos, &len) || pos + len > end) return -1;
            fn(ctx, field, wt, p, pos, pos + len, 0);
            pos += len;
        } else if (wt == 1) {
            pos += 8;
        } else if (wt == 5) {
            pos += 4;
        } else {
            return -1;
        }
    }
    return pos == end ? 0 : -1;
}

/* ---- interned names and sets of them (by pointer) */

typedef struct {
    char **slots;
    size_t cap, len;
} strtab_t;

static uint64_t hash_bytes(const uint8_t *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ULL;
    return h;
}

static strtab_t INTERN;

static void intern_grow(void) {
    size_t cap = INTERN.cap ? INTERN.cap * 2 : 1 << 16;
    char **slots = calloc(cap, sizeof(char *));
    if (!slots) die("out of memory");
    for (size_t i = 0; i < INTERN.cap; i++) {
        char *s = INTERN.slots[i];
        if (!s) continue;
        size_t j = hash_bytes((const uint8_t *)s, strlen(s)) & (cap - 1);
        while (slots[j]) j = (j + 1) & (cap - 1);
        slots[j] = s;
    }
    free(INTERN.slots);
    INTERN.slots = slots;
    INTERN.cap = cap;
}

static const char *intern(const uint8_t *s, size_t n) {
    if ((INTERN.len + 1) * 2 > INTERN.cap) intern_grow();
    size_t j = hash_bytes(s, n) & (INTERN.cap - 1);
    while (INTERN.slots[j]) {
        if (strlen(INTERN.slots[j]) == n && !memcmp(INTERN.slots[j], s, n)) return INTERN.slots[j];
        j = (j + 1) & (INTERN.cap - 1);
    }
    char *copy = xmalloc(n + 1);
    memcpy(copy, s, n);
    copy[n] = 0;
    INTERN.slots[j] = copy;
    INTERN.len++;
    return copy;
}

typedef struct {
    const char **slots;
    size_t cap, len;
} set_t;

static size_t ptr_hash(const char *p) { return (size_t)(((uintptr_t)p >> 3) * 0x9E3779B97F4A7C15ULL); }

static int set_has(const set_t *s, const char *k) {
    if (!s->cap) return 0;
    size_t j = ptr_hash(k) & (s->cap - 1);
    while (s->slots[j]) {
        if (s->slots[j] == k) return 1;
        j = (j + 1) & (s->cap - 1);
    }
    return 0;
}

static void set_add(set_t *s, const char *k);

static void set_grow(set_t *s) {
    set_t bigger = {calloc(s->cap ? s->cap * 2 : 16, sizeof(char *)), s->cap ? s->cap * 2 : 16, 0};
    if (!bigger.slots) die("out of memory");
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i]) set_add(&bigger, s->slots[i]);
    free(s->slots);
    *s = bigger;
}

static void set_add(set_t *s, const char *k) {
    if ((s->len + 1) * 2 > s->cap) set_grow(s);
    size_t j = ptr_hash(k) & (s->cap - 1);
    while (s->slots[j]) {
        if (s->slots[j] == k) return;
        j = (j + 1) & (s->cap - 1);
    }
    s->slots[j] = k;
    s->len++;
}

static void set_clear(set_t *s) {
    free(s->slots);
    s->slots = NULL;
    s->cap = s->len = 0;
}

static int set_subset(const set_t *a, const set_t *b) { /* a <= b */
    for (size_t i = 0; i < a->cap; i++)
        if (a->slots[i] && !set_has(b, a->slots[i])) return 0;
    return 1;
}

static int set_equal(const set_t *a, const set_t *b) { return a->len == b->len && set_subset(a, b); }

static void set_add_all(set_t *dst, const set_t *src) {
    for (size_t i = 0; i < src->cap; i++)
        if (src->slots[i]) set_add(dst, src->slots[i]);
}

static void set_add_except(set_t *dst, const set_t *src, const set_t *except) { /* src - except */
    for (size_t i = 0; i < src->cap; i++)
        if (src->slots[i] && !set_has(except, src->slots[i])) set_add(dst, src->slots[i]);
}

static void set_keep(set_t *s, const set_t *other, int in_other) { /* s & other, or s - other */
    set_t kept = {0};
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i] && set_has(other, s->slots[i]) == in_other) set_add(&kept, s->slots[i]);
    set_clear(s);
    *s = kept;
}

static int by_name(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

static size_t set_sorted(const set_t *s, const char ***out) {
    const char **v = xmalloc(sizeof(char *) * (s->len + 1));
    size_t n = 0;
    for (size_t i = 0; i < s->cap; i++)
        if (s->slots[i]) v[n++] = s->slots[i];
    qsort(v, n, sizeof(char *), by_name);
    *out = v;
    return n;
}

/* ---- one simulated proxy */

enum { CONNECTING, HANDSHAKING, OPEN, DONE };

typedef struct {
    set_t names, got;
    char *nonce, *version;
    int received, requested;
} sub_t;

typedef struct {
    int index, fd, state;
    char cn[256];
    SSL *ssl;
    buf_t in;        /* decrypted bytes not yet parsed */
    buf_t msg;       /* the gRPC message being read */
    size_t need;     /* its length once the 5-byte prefix is in (0: not yet) */
    int have_prefix;
    size_t data_left;
    int data_end;
    buf_t out;       /* gRPC message bytes waiting for send window */
    buf_t wire;      /* bytes waiting for the socket (SSL_write) */
    int64_t conn_window, stream_window, peer_initial, peer_frame;
    uint64_t received;
    sub_t subs[NTYPES];
    set_t sds_from_cds, sds_from_lds;
    double complete_at;
    uint64_t bytes, responses;
    char error[200];
} proxy_t;

static struct {
    char host[64], server_name[256], ca[1024];
    int port, delta;
    double limit_s, t0;
    int n, remaining, epfd;
    proxy_t *proxies;
} G;

static void fail(proxy_t *p, const char *why) {
    if (!p->error[0]) snprintf(p->error, sizeof p->error, "%s", why);
    if (p->state != DONE) {
        p->state = DONE;
        epoll_ctl(G.epfd, EPOLL_CTL_DEL, p->fd, NULL);
        close(p->fd);
        if (p->complete_at < 0) G.remaining--;
    }
}

/* ---- HTTP/2 */

static void frame(buf_t *b, int type, int flags, uint32_t stream, const void *payload, size_t n) {
    uint8_t h[9] = {(uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n, (uint8_t)type, (uint8_t)flags,
                    (uint8_t)(stream >> 24), (uint8_t)(stream >> 16), (uint8_t)(stream >> 8), (uint8_t)stream};
    buf_add(b, h, 9);
    if (n) buf_add(b, payload, n);
}

static void hpack_literal(buf_t *b, int index, const char *name, const char *value) {
    if (index) {
        uint8_t c = (uint8_t)index; /* literal without indexing, indexed name (index < 15) */
        if (index >= 15) {
            c = 0x0f;
            buf_add(b, &c, 1);
            c = (uint8_t)(index - 15);
        }
        buf_add(b, &c, 1);
    } else {
        uint8_t c = 0, n = (uint8_t)strlen(name);
        buf_add(b, &c, 1);
        buf_add(b, &n, 1);
        buf_add(b, name, n);
    }
    size_t n = strlen(value);
    if (n < 127) {
        uint8_t c = (uint8_t)n;
        buf_add(b, &c, 1);
    } else {
        uint8_t c = 127;
        buf_add(b, &c, 1);
        put_varint(b, n - 127);
    }
    buf_add(b, value, n);
}

static void flush_out(proxy_t *p) { /* gRPC bytes into DATA frames, as far as the windows allow */
    size_t off = 0;
    while (off < p->out.len && p->conn_window > 0 && p->stream_window > 0) {
        size_t n = p->out.len - off;
        if ((int64_t)n > p->conn_window) n = (size_t)p->conn_window;
        if ((int64_t)n > p->stream_window) n = (size_t)p->stream_window;
        if ((int64_t)n > p->peer_frame) n = (size_t)p->peer_frame;
        frame(&p->wire, 0, 0, 1, p->out.p + off, n);
        p->conn_window -= n;
        p->stream_window -= n;
        off += n;
    }
    buf_drop(&p->out, off);
}

static void send_message(proxy_t *p, const buf_t *m) {
    uint8_t prefix[5] = {0, (uint8_t)(m->len >> 24), (uint8_t)(m->len >> 16), (uint8_t)(m->len >> 8), (uint8_t)m->len};
    buf_add(&p->out, prefix, 5);
    buf_add(&p->out, m->p, m->len);
    flush_out(p);
}

/* ---- xDS requests */

static void request(proxy_t *p, int type, int first, const set_t *subscribe, const set_t *unsubscribe) {
    sub_t *st = &p->subs[type];
    buf_t m = {0};
    const char **v;
    size_t n;
    if (G.delta) {
        /* DeltaDiscoveryRequest {node = 1, type_url = 2, subscribe = 3, unsubscribe = 4, nonce = 6} */
        if (first) {
            buf_t node = {0};
            put_str(&node, 1, p->cn);
            put_field(&m, 1, node.p, node.len);
            free(node.p);
        }
        put_str(&m, 2, TYPE_URL[type]);
        if (subscribe) {
            n = set_sorted(subscribe, &v);
            for (size_t i = 0; i < n; i++) put_str(&m, 3, v[i]);
            free(v);
        }
        if (unsubscribe) {
            n = set_sorted(unsubscribe, &v);
            for (size_t i = 0; i < n; i++) put_str(&m, 4, v[i]);
            free(v);
        }
        if (!first) put_str(&m, 6, st->nonce);
    } else {
        /* DiscoveryRequest {version_info = 1, node = 2, resource_names = 3, type_url = 4, nonce = 5} */
        put_str(&m, 1, st->version);
        if (first) {
            buf_t node = {0};
            put_str(&node, 1, p->cn);
            put_field(&m, 2, node.p, node.len);
            free(node.p);
        }
        n = set_sorted(&st->names, &v);
        for (size_t i = 0; i < n; i++) put_str(&m, 3, v[i]);
        free(v);
        put_str(&m, 4, TYPE_URL[type]);
        put_str(&m, 5, st->nonce);
    }
    send_message(p, &m);
    free(m.p);
}

static void want(proxy_t *p, int type, set_t *names) { /* takes `names` */
    sub_t *st = &p->subs[type];
    if (st->requested && set_equal(names, &st->names)) {
        set_clear(names);
        return;
    }
    if (G.delta) {
        set_t sub = {0}, unsub = {0};
        set_add_except(&sub, names, &st->names);
        set_add_except(&unsub, &st->names, names);
        int first = !st->requested && names->len == 0;
        set_clear(&st->names);
        st->names = *names;
        request(p, type, first, &sub, &unsub);
        set_clear(&sub);
        set_clear(&unsub);
    } else {
        set_clear(&st->names);
        st->names = *names;
        set_keep(&st->got, &st->names, 1); /* Envoy forgets a resource with its last watch */
        request(p, type, 0, NULL, NULL);
    }
    st->requested = 1;
    names->slots = NULL;
    names->cap = names->len = 0;
}

/* ---- responses */

typedef struct {
    const uint8_t *p;
    int type;
    char *version, *nonce;
    set_t names, eds, removed, sds, rds;
} resp_t;

static char *dup_range(const uint8_t *p, size_t s, size_t e) {
    char *out = xmalloc(e - s + 1);
    memcpy(out, p + s, e - s);
    out[e - s] = 0;
    return out;
}

typedef struct {
    const char *name;
    uint64_t kind;
} body_t;

static void body_field(void *ctx, int f, int wt, const uint8_t *p, size_t s, size_t e, uint64_t v) {
    body_t *b = ctx;
    if (f == 1 && wt == 2 && !b->name) b->name = intern(p + s, e - s);
    else if (f == 2 && wt == 0) b->kind = v;
}

static void add_body(resp_t *r, size_t s, size_t e) {
    body_t b = {NULL, 0};
    if (walk(r->p, s, e, body_field, &b) == 0 && b.name) {
        set_add(&r->names, b.name);
        if (r->type == T_CDS && b.kind == 3) set_add(&r->eds, b.name);
    }
}

static void any_field(void *ctx, int f, int wt, const uint8_t *p, size_t s, size_t e, uint64_t v) {
    (void)p, (void)v;
    if (f == 2 && wt == 2) add_body(ctx, s, e);
}

static void delta_resource_field(void *ctx, int f, int wt, const uint8_t *p, size_t s, size_t e, uint64_t v) {
    if (f == 2 && wt == 2) walk(p, s, e, any_field, ctx);
    (void)v;
}

static void response_field(void *ctx, int f, int wt, const uint8_t *p, size_t s, size_t e, uint64_t v) {
    resp_t *r = ctx;
    (void)v;
    if (wt != 2) return;
    if (f == 1) r->version = dup_range(p, s, e);
    else if (f == 5) r->nonce = dup_range(p, s, e);
    else if (f == 4) {
        r->type = -1;
        for (int t = 0; t < NTYPES; t++)
            if (strlen(TYPE_URL[t]) == e - s && !memcmp(TYPE_URL[t], p + s, e - s)) r->type = t;
    } else if (f == 6 && G.delta) set_add(&r->removed, intern(p + s, e - s));
}

static void resources_field(void *ctx, int f, int wt, const uint8_t *p, size_t s, size_t e, uint64_t v) {
    (void)v;
    if (f == 2 && wt == 2) walk(p, s, e, G.delta ? delta_resource_field : any_field, ctx);
}

/* Strings that start with `prefix` and fill a length-delimited field with tag byte `tag`. */
static void framed_refs(const uint8_t *p, size_t n, const char *prefix, uint8_t tag, set_t *out, int rds) {
    size_t plen = strlen(prefix);
    const uint8_t *at = p, *end = p + n;
    while ((at = memmem(at, end - at, prefix, plen)) != NULL) {
        size_t i = at - p;
        if (i >= 2 && p[i - 1] < 0x80 && p[i - 2] == tag && i + p[i - 1] <= n) {
            size_t len = p[i - 1];
            int ok = 1;
            if (rds) { /* rds-[a-z]+\.[0-9]+ */
                size_t j = plen, letters = 0, digits = 0;
                while (j < len && p[i + j] >= 'a' && p[i + j] <= 'z') j++, letters++;
                if (j < len && p[i + j] == '.') j++;
                else ok = 0;
                while (j < len && p[i + j] >= '0' && p[i + j] <= '9') j++, digits++;
                ok = ok && letters && digits && j == len;
            }
            if (ok) set_add(out, intern(p + i, len));
        }
        at += 1;
    }
}

static int complete(proxy_t *p) {
    if (!p->subs[T_CDS].received || !p->subs[T_LDS].received) return 0;
    int by_name[3] = {T_EDS, T_RDS, T_SDS};
    for (int i = 0; i < 3; i++)
        if (!set_subset(&p->subs[by_name[i]].names, &p->subs[by_name[i]].got)) return 0;
    return 1;
}

static void want_sds(proxy_t *p) {
    set_t names = {0};
    set_add_all(&names, &p->sds_from_cds);
    set_add_all(&names, &p->sds_from_lds);
    if (G.delta) set_add_all(&names, &p->subs[T_SDS].names);
    want(p, T_SDS, &names);
}

static void on_response(proxy_t *p, const uint8_t *m, size_t n) {
    resp_t r = {.p = m, .type = -1};
    p->responses++;
    p->bytes += n;
    if (walk(m, 0, n, response_field, &r) || r.type < 0) {
        fail(p, "a response could not be read");
        goto out;
    }
    walk(m, 0, n, resources_field, &r);
    sub_t *st = &p->subs[r.type];
    free(st->nonce);
    free(st->version);
    st->nonce = r.nonce ? r.nonce : strdup("");
    st->version = r.version ? r.version : strdup("");
    r.nonce = r.version = NULL;
    st->received = 1;
    if (G.delta || r.type == T_EDS || r.type == T_RDS || r.type == T_SDS) {
        set_add_all(&st->got, &r.names);
        if (G.delta && r.removed.len) set_keep(&st->got, &r.removed, 0);
    } else {
        set_clear(&st->got);
        st->got = r.names;
        r.names.slots = NULL;
        r.names.cap = r.names.len = 0;
    }
    /* ACK first, then ask for what the new resources refer to (as Envoy does) */
    if (G.delta) {
        set_t none = {0};
        request(p, r.type, 0, &none, &none);
    } else {
        request(p, r.type, 0, NULL, NULL);
    }
    if (r.type == T_CDS) {
        set_t eds = {0};
        if (G.delta) set_add_all(&eds, &p->subs[T_EDS].names);
        set_add_all(&eds, &r.eds);
        if (G.delta && r.removed.len) set_keep(&eds, &r.removed, 0);
        want(p, T_EDS, &eds);
        set_clear(&p->sds_from_cds);
        framed_refs(m, n, "service-cert:", 0x0a, &p->sds_from_cds, 0);
        framed_refs(m, n, "root-cert-", 0x0a, &p->sds_from_cds, 0);
        want_sds(p);
    } else if (r.type == T_LDS) {
        set_t rds = {0};
        if (G.delta) set_add_all(&rds, &p->subs[T_RDS].names);
        framed_refs(m, n, "rds-", 0x12, &rds, 1);
        want(p, T_RDS, &rds);
        set_clear(&p->sds_from_lds);
        framed_refs(m, n, "service-cert:", 0x0a, &p->sds_from_lds, 0);
        framed_refs(m, n, "root-cert-", 0x0a, &p->sds_from_lds, 0);
        want_sds(p);
    }
    if (p->complete_at < 0 && complete(p)) {
        p->complete_at = now_s() - G.t0;
        G.remaining--;
    }
out:
    free(r.nonce);
    free(r.version);
    set_clear(&r.names);
    set_clear(&r.eds);
    set_clear(&r.removed);
}

/* ---- reading frames */

static void message_bytes(proxy_t *p, const uint8_t *d, size_t n) {
    while (n && p->state == OPEN) {
        if (!p->have_prefix) {
            size_t take = 5 - p->msg.len < n ? 5 - p->msg.len : n;
            buf_add(&p->msg, d, take);
            d += take, n -= take;
            if (p->msg.len < 5) return;
            if (p->msg.p[0]) {
                fail(p, "compressed gRPC messages are not supported");
                return;
            }
            p->need = ((size_t)p->msg.p[1] << 24) | ((size_t)p->msg.p[2] << 16) | ((size_t)p->msg.p[3] << 8) | p->msg.p[4];
            p->msg.len = 0;
            p->have_prefix = 1;
            buf_reserve(&p->msg, p->need);
        }
        size_t take = p->need - p->msg.len < n ? p->need - p->msg.len : n;
        buf_add(&p->msg, d, take);
        d += take, n -= take;
        if (p->msg.len == p->need) {
            p->have_prefix = 0;
            p->msg.len = 0;
            on_response(p, p->msg.p, p->need);
        }
    }
}

static void count_data(proxy_t *p, size_t n) {
    p->received += n;
    if (p->received >= (1u << 30)) {
        uint8_t inc[4] = {(uint8_t)(p->received >> 24), (uint8_t)(p->received >> 16), (uint8_t)(p->received >> 8), (uint8_t)p->received};
        frame(&p->wire, 8, 0, 0, inc, 4);
        frame(&p->wire, 8, 0, 1, inc, 4);
        p->received = 0;
    }
}

static uint32_t be32(const uint8_t *b) { return ((uint32_t)b[0] << 24) | ((uint32_t)b[1] << 16) | ((uint32_t)b[2] << 8) | b[3]; }

static void parse_frames(proxy_t *p) {
    size_t pos = 0;
    uint8_t *d = p->in.p;
    while (pos < p->in.len && p->state == OPEN) {
        if (p->data_left) {
            size_t take = p->in.len - pos < p->data_left ? p->in.len - pos : p->data_left;
            message_bytes(p, d + pos, take);
            pos += take;
            p->data_left -= take;
            if (!p->data_left && p->data_end) fail(p, "the server ended the stream");
            continue;
        }
        if (p->in.len - pos < 9) break;
        size_t len = ((size_t)d[pos] << 16) | ((size_t)d[pos + 1] << 8) | d[pos + 2];
        int type = d[pos + 3], flags = d[pos + 4];
        uint32_t stream = be32(d + pos + 5) & 0x7fffffff;
        if (type == 0 && !(flags & 0x8)) { /* DATA, not padded: its payload is read as it comes */
            pos += 9;
            count_data(p, len);
            p->data_left = len;
            p->data_end = (flags & 1) && stream == 1;
            if (!len && p->data_end) fail(p, "the server ended the stream");
            continue;
        }
        if (p->in.len - pos < 9 + len) break;
        const uint8_t *pl = d + pos + 9;
        pos += 9 + len;
        if (type == 4 && !(flags & 1)) { /* SETTINGS */
            for (size_t i = 0; i + 6 <= len; i += 6) {
                int key = (pl[i] << 8) | pl[i + 1];
                int64_t value = be32(pl + i + 2);
                if (key == 4) {
                    p->stream_window += value - p->peer_initial;
                    p->peer_initial = value;
                } else if (key == 5) {
                    p->peer_frame = value;
                }
            }
            frame(&p->wire, 4, 1, 0, NULL, 0);
            flush_out(p);
        } else if (type == 6 && !(flags & 1)) { /* PING */
            frame(&p->wire, 6, 1, 0, pl, len);
        } else if (type == 8 && len >= 4) { /* WINDOW_UPDATE */
            int64_t inc = be32(pl) & 0x7fffffff;
            if (stream == 0) p->conn_window += inc;
            else if (stream == 1) p->stream_window += inc;
            flush_out(p);
        } else if (type == 1 && stream == 1 && (flags & 1)) { /* trailers (not decoded) */
            fail(p, "the server ended the stream");
        } else if (type == 3 && stream == 1) {
            fail(p, "stream reset");
        } else if (type == 7) {
            fail(p, "GOAWAY");
        } else if (type == 0) { /* padded DATA (gRPC servers do not pad) */
            count_data(p, len);
            size_t pad = len ? pl[0] : 0;
            if (len >= 1 + pad) message_bytes(p, pl + 1, len - 1 - pad);
            if (flags & 1) fail(p, "the server ended the stream");
        }
    }
    if (p->state == OPEN) buf_drop(&p->in, pos);
}

/* ---- the connection */

static void start_stream(proxy_t *p) {
    const unsigned char *alpn = NULL;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(p->ssl, &alpn, &alpn_len);
    if (alpn_len != 2 || memcmp(alpn, "h2", 2)) {
        fail(p, "the server did not agree to HTTP/2 (ALPN)");
        return;
    }
    p->state = OPEN;
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    buf_add(&p->wire, preface, sizeof preface - 1);
    uint8_t settings[18] = {0, 2, 0, 0, 0, 0, 0, 4, 0x7f, 0xff, 0xff, 0xff, 0, 5, 0, 0x10, 0, 0};
    frame(&p->wire, 4, 0, 0, settings, 18);
    uint32_t inc = 0x7fffffff - 65535;
    uint8_t incb[4] = {(uint8_t)(inc >> 24), (uint8_t)(inc >> 16), (uint8_t)(inc >> 8), (uint8_t)inc};
    frame(&p->wire, 8, 0, 0, incb, 4);
    buf_t h = {0};
    uint8_t static_fields[2] = {0x83, 0x87}; /* :method POST, :scheme https */
    buf_add(&h, static_fields, 2);
    hpack_literal(&h, 4, NULL, G.delta ? DELTA_PATH : SOTW_PATH);
    hpack_literal(&h, 1, NULL, G.server_name);
    hpack_literal(&h, 31, NULL, "application/grpc");
    hpack_literal(&h, 0, "te", "trailers");
    frame(&p->wire, 1, 4, 1, h.p, h.len);
    free(h.p);
    p->subs[T_CDS].requested = p->subs[T_LDS].requested = 1;
    if (G.delta) {
        set_t none = {0};
        request(p, T_CDS, 1, &none, &none);
        request(p, T_LDS, 0, &none, &none);
    } else {
        request(p, T_CDS, 1, NULL, NULL);
        request(p, T_LDS, 0, NULL, NULL);
    }
}

static void update_events(proxy_t *p, int want_write) {
    struct epoll_event ev = {.events = EPOLLIN | (want_write ? EPOLLOUT : 0), .data.ptr = p};
    epoll_ctl(G.epfd, EPOLL_CTL_MOD, p->fd, &ev);
}

static void pump(proxy_t *p) {
    int want_write = 0;
    if (p->state == CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            fail(p, strerror(err));
            return;
        }
        p->state = HANDSHAKING;
    }
    if (p->state == HANDSHAKING) {
        int rc = SSL_connect(p->ssl);
        if (rc == 1) {
            start_stream(p);
        } else {
            int e = SSL_get_error(p->ssl, rc);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                update_events(p, e == SSL_ERROR_WANT_WRITE);
                return;
            }
            char why[160];
            snprintf(why, sizeof why, "TLS handshake: %s", ERR_error_string(ERR_get_error(), NULL));
            fail(p, why);
            return;
        }
    }
    while (p->state == OPEN) {
        buf_reserve(&p->in, 256 * 1024);
        int n = SSL_read(p->ssl, p->in.p + p->in.len, (int)(p->in.cap - p->in.len));
        if (n > 0) {
            p->in.len += (size_t)n;
            parse_frames(p);
            continue;
        }
        int e = SSL_get_error(p->ssl, n);
        if (e == SSL_ERROR_WANT_READ) break;
        if (e == SSL_ERROR_WANT_WRITE) {
            want_write = 1;
            break;
        }
        fail(p, e == SSL_ERROR_ZERO_RETURN ? "connection closed" : "read failed");
        return;
    }
    while (p->state == OPEN && p->wire.len) {
        int n = SSL_write(p->ssl, p->wire.p, (int)p->wire.len);
        if (n > 0) {
            buf_drop(&p->wire, (size_t)n);
            continue;
        }
        int e = SSL_get_error(p->ssl, n);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
            want_write = 1;
            break;
        }
        fail(p, "write failed");
        return;
    }
    if (p->state == OPEN) update_events(p, want_write || p->wire.len);
}

static void open_connection(proxy_t *p) {
    p->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (p->fd < 0) die("socket");
    int one = 1;
    setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)G.port)};
    inet_pton(AF_INET, G.host, &a.sin_addr);
    SSL_set_fd(p->ssl, p->fd);
    p->state = CONNECTING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = p};
    epoll_ctl(G.epfd, EPOLL_CTL_ADD, p->fd, &ev);
    if (connect(p->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) fail(p, strerror(errno));
}

/* ---- main */

static void print_json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') putchar('\\');
        if ((unsigned char)*s >= 0x20) putchar(*s);
    }
    putchar('"');
}

int main(int argc, char **argv) {
    if (argc != 2) die("usage: loadgen CONFIG");
    FILE *f = fopen(argv[1], "r");
    if (!f) die("cannot open the config");
    if (fscanf(f, "%63s %d %255s %1023s %d %lf", G.host, &G.port, G.server_name, G.ca, &G.delta, &G.limit_s) != 6)
        die("bad config header");
    size_t cap = 64;
    G.proxies = calloc(cap, sizeof(proxy_t));
    char cert[1024], key[1024];
    while (1) {
        proxy_t p = {0};
        if (fscanf(f, "%255s %1023s %1023s", p.cn, cert, key) != 3) break;
        if ((size_t)G.n == cap) {
            cap *= 2;
            G.proxies = xrealloc(G.proxies, cap * sizeof(proxy_t));
        }
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx) die("SSL_CTX_new");
        if (SSL_CTX_load_verify_locations(ctx, G.ca, NULL) != 1) die("cannot load the CA");
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 || SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
            die("cannot load a client certificate or key");
        static const unsigned char alpn[] = {2, 'h', '2'};
        SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn);
        p.ssl = SSL_new(ctx);
        SSL_CTX_free(ctx); /* the SSL keeps its own reference */
        SSL_set_tlsext_host_name(p.ssl, G.server_name);
        SSL_set1_host(p.ssl, G.server_name);
        SSL_set_mode(p.ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        p.index = G.n;
        p.complete_at = -1;
        p.conn_window = p.stream_window = p.peer_initial = 65535;
        p.peer_frame = 16384;
        G.proxies[G.n++] = p;
    }
    fclose(f);
    G.epfd = epoll_create1(0);
    fprintf(stderr, "loadgen: %d proxies ready\n", G.n);
    char line[64];
    if (!fgets(line, sizeof line, stdin)) return 0;

    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    G.t0 = now_s();
    G.remaining = G.n;
    for (int i = 0; i < G.n; i++) open_connection(&G.proxies[i]);
    struct epoll_event evs[512];
    while (G.remaining > 0 && now_s() - G.t0 < G.limit_s) {
        int n = epoll_wait(G.epfd, evs, 512, 100);
        for (int i = 0; i < n; i++) {
            proxy_t *p = evs[i].data.ptr;
            if (p->state != DONE) pump(p);
        }
    }
    double wall = now_s() - G.t0;
    getrusage(RUSAGE_SELF, &r1);
    double cpu = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) + (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6 +
                 (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) + (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;
    printf("{\"complete\": [");
    for (int i = 0; i < G.n; i++) {
        if (G.proxies[i].complete_at < 0) printf("%snull", i ? ", " : "");
        else printf("%s%.6f", i ? ", " : "", G.proxies[i].complete_at);
    }
    printf("], \"bytes\": [");
    for (int i = 0; i < G.n; i++) printf("%s%llu", i ? ", " : "", (unsigned long long)G.proxies[i].bytes);
    printf("], \"responses\": [");
    for (int i = 0; i < G.n; i++) printf("%s%llu", i ? ", " : "", (unsigned long long)G.proxies[i].responses);
    printf("], \"cpu_s\": %.6f, \"wall_s\": %.6f, \"errors\": [", cpu, wall);
    int shown = 0;
    for (int i = 0; i < G.n && shown < 3; i++) {
        if (!G.proxies[i].error[0]) continue;
        char both[600];
        snprintf(both, sizeof both, "%s: %s", G.proxies[i].cn, G.proxies[i].error);
        if (shown++) printf(", ");
        print_json_str(both);
    }
    printf("]}\n");
    fflush(stdout);
    return 0;
}
