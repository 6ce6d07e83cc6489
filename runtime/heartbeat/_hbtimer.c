/*
 * _hbtimer.c - the heartbeat engine of wolfpack.runtime.heartbeat, in C.
 *
 * One POSIX thread per engine sends an authenticated UDP heartbeat on every
 * network at absolute deadlines (a CLOCK_MONOTONIC timerfd armed once with
 * TFD_TIMER_ABSTIME and a fixed interval, so lateness never accumulates),
 * receives the peers' heartbeats, keeps their last-seen times, and queues
 * "suspect" / "back" / "ahead" events, writing to an eventfd the asyncio loop
 * watches.  Every heartbeat carries the membership epoch its sender installed
 * (set_epoch); a peer at a newer epoch than this node's is reported "ahead",
 * once per peer until this node installs an epoch again (spec/heartbeat.py).
 *
 * The thread never touches a Python object and never holds the GIL: it keeps
 * its period while the interpreter is busy.  The Python-facing methods hold
 * the GIL and take the engine's mutex for a few microseconds; the thread
 * never waits for the GIL, so the two locks cannot deadlock.
 *
 * SHA-256 and HMAC-SHA256 are implemented here (no OpenSSL to link).
 *
 * The pure-Python twin is _pytimer.py.  Both are driven by _timer.py, which
 * validates the configuration, owns the sockets and the event fd, and
 * derives the MAC key; the datagram format is described in _wire.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define HB_MAGIC "WPHB"
#define HB_VERSION 3
#define HB_AGE_SLOTS 64   /* node ids the members and ages cover */
#define HB_AGE_NEVER 0xFFFF
/* magic 4, version 1, node id 2, incarnation 8, sequence 8, epoch 8, members 8, ages 64 x 2 */
#define HB_HEADER_LEN (39 + 2 * HB_AGE_SLOTS)
#define HB_MAC_LEN 16
#define HB_DATAGRAM_LEN (HB_HEADER_LEN + HB_MAC_LEN)
#define HB_MAX_NETWORKS 8
#define HB_RETIRED 8          /* incarnations remembered per peer, to refuse replays of old lives */
#define HB_LATENESS_RING 4096 /* recent send lateness samples kept */
#define HB_EVENT_CAP 1024     /* queued events before the oldest are dropped */
#define HB_RECV_BURST 64      /* datagrams read per socket per wake-up, so a flood cannot starve the timer */
#define HB_LEASE_MAGIC "WPLEASE1" /* runtime/monitor/lease.py: the page the monitors enforce */
#define HB_LEASE_SIZE 64
#define HB_LEASE_REVOKED 16 /* offset of the int64 "revoked" field */

/* ------------------------------------------------------------------ */
/* SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104)                     */
/* ------------------------------------------------------------------ */

typedef struct {
    uint32_t h[8];
    uint64_t length;
    uint8_t block[64];
    size_t fill;
} sha256_ctx;

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_compress(uint32_t h[8], const uint8_t p[64])
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR32(w[i - 15], 7) ^ ROR32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR32(w[i - 2], 17) ^ ROR32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (ROR32(e, 6) ^ ROR32(e, 11) ^ ROR32(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ROR32(a, 2) ^ ROR32(a, 13) ^ ROR32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
}

static void sha256_init(sha256_ctx *c)
{
    static const uint32_t h0[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    };
    memcpy(c->h, h0, sizeof h0);
    c->length = 0;
    c->fill = 0;
}

static void sha256_update(sha256_ctx *c, const uint8_t *data, size_t n)
{
    c->length += n;
    while (n > 0) {
        size_t take = 64 - c->fill < n ? 64 - c->fill : n;
        memcpy(c->block + c->fill, data, take);
        c->fill += take;
        data += take;
        n -= take;
        if (c->fill == 64) {
            sha256_compress(c->h, c->block);
            c->fill = 0;
        }
    }
}

static void sha256_final(sha256_ctx *c, uint8_t out[32])
{
    uint64_t bits = c->length * 8;
    uint8_t pad = 0x80, zero = 0, len[8];
    sha256_update(c, &pad, 1);
    while (c->fill != 56)
        sha256_update(c, &zero, 1);
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(c, len, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

static void hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *msg, size_t msg_len, uint8_t out[32])
{
    uint8_t k0[64] = {0}, pad[64], inner[32];
    sha256_ctx c;
    if (key_len > 64) {
        sha256_init(&c);
        sha256_update(&c, key, key_len);
        sha256_final(&c, k0);
    } else {
        memcpy(k0, key, key_len);
    }
    for (int i = 0; i < 64; i++)
        pad[i] = k0[i] ^ 0x36;
    sha256_init(&c);
    sha256_update(&c, pad, 64);
    sha256_update(&c, msg, msg_len);
    sha256_final(&c, inner);
    for (int i = 0; i < 64; i++)
        pad[i] = k0[i] ^ 0x5c;
    sha256_init(&c);
    sha256_update(&c, pad, 64);
    sha256_update(&c, inner, 32);
    sha256_final(&c, out);
}

/* ------------------------------------------------------------------ */
/* The datagram                                                        */
/* ------------------------------------------------------------------ */

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void hb_encode(const uint8_t mac_key[32], uint16_t node, uint64_t incarnation, uint64_t seq,
                      uint64_t epoch, uint64_t members, const uint16_t ages[HB_AGE_SLOTS],
                      uint8_t out[HB_DATAGRAM_LEN])
{
    uint8_t mac[32];
    memcpy(out, HB_MAGIC, 4);
    out[4] = HB_VERSION;
    out[5] = (uint8_t)(node >> 8);
    out[6] = (uint8_t)node;
    put_u64(out + 7, incarnation);
    put_u64(out + 15, seq);
    put_u64(out + 23, epoch);
    put_u64(out + 31, members);
    for (int k = 0; k < HB_AGE_SLOTS; k++) {
        out[39 + 2 * k] = (uint8_t)(ages[k] >> 8);
        out[40 + 2 * k] = (uint8_t)ages[k];
    }
    hmac_sha256(mac_key, 32, out, HB_HEADER_LEN, mac);
    memcpy(out + HB_HEADER_LEN, mac, HB_MAC_LEN);
}

/* A datagram is well formed when its length, magic and version are right. */
static int hb_well_formed(const uint8_t *p, size_t n)
{
    return n == HB_DATAGRAM_LEN && memcmp(p, HB_MAGIC, 4) == 0 && p[4] == HB_VERSION;
}

static uint16_t hb_node(const uint8_t *p)
{
    return (uint16_t)(p[5] << 8 | p[6]);
}

/* Compare the MAC in constant time (no early exit on the first difference). */
static int hb_mac_ok(const uint8_t mac_key[32], const uint8_t *p)
{
    uint8_t mac[32];
    volatile uint8_t diff = 0;
    hmac_sha256(mac_key, 32, p, HB_HEADER_LEN, mac);
    for (int i = 0; i < HB_MAC_LEN; i++)
        diff |= (uint8_t)(mac[i] ^ p[HB_HEADER_LEN + i]);
    return diff == 0;
}

/* ------------------------------------------------------------------ */
/* The engine                                                          */
/* ------------------------------------------------------------------ */

typedef struct {
    uint16_t id;
    struct sockaddr_storage addr[HB_MAX_NETWORKS];
    socklen_t addr_len[HB_MAX_NETWORKS];
    int64_t last_seen[HB_MAX_NETWORKS]; /* CLOCK_MONOTONIC ns of the last valid heartbeat; 0: never */
    uint64_t last_seq[HB_MAX_NETWORKS]; /* highest sequence accepted on that network (this incarnation) */
    uint64_t incarnation;
    int has_incarnation;
    uint64_t retired[HB_RETIRED];
    int retired_count, retired_next;
    int64_t alive_since; /* last valid heartbeat on any network, or the start time */
    int64_t last_valid;  /* last valid heartbeat while alive, for the receive-gap figure; 0: none */
    int suspect;
    int ahead; /* reported at a newer epoch than this node's, since this node last installed one */
    uint64_t epoch;        /* the epoch its last valid heartbeat carried */
    uint64_t members;      /* ... and the members of that epoch */
    int64_t vouched_at;    /* this node's clock: when the peer last heard this node (arrival - its age); 0: never */
    uint64_t revoked_for;  /* the epoch this peer's heartbeats revoked the lease for (reported once) */
} hb_peer;

enum { EV_SUSPECT = 1, EV_BACK = 2, EV_AHEAD = 3, EV_REVOKED = 4 };

typedef struct {
    uint8_t kind;
    uint16_t peer;
    uint64_t epoch; /* "ahead": the peer's epoch, which the loop compares with what it installed by then */
} hb_event;

typedef struct {
    uint64_t ticks, sent, send_errors, received, rejected_malformed, rejected_unknown, rejected_mac,
        rejected_replay, missed_deadlines, events_dropped, extra_rounds;
    int64_t max_send_lateness_ns, max_receive_gap_ns, cpu_ns;
    int thread_errno;
} hb_stats;

enum { STATE_NEW, STATE_RUNNING, STATE_STOPPING, STATE_STOPPED };

typedef struct {
    PyObject_HEAD
    /* configuration, immutable once the thread runs */
    uint16_t node_id;
    uint8_t mac_key[32];
    uint64_t incarnation;
    int64_t period_ns;
    int threshold;
    int network_count;
    int fds[HB_MAX_NETWORKS];
    int notify_fd;
    int peer_count;
    hb_peer *peers;
    /* owned by the thread */
    uint64_t seq;
    int timer_fd, stop_fd, kick_fd;
    int lease_fd;             /* the lease page's file (borrowed), or -1 */
    volatile int64_t *lease;  /* mapped while the thread runs */
    int64_t t0;
    pthread_t thread;
    int state;
    /* shared: guarded by lock */
    pthread_mutex_t lock;
    uint64_t epoch;   /* the membership epoch this node installed, sent with every heartbeat */
    uint64_t members; /* ... and its members */
    hb_stats stats;
    uint32_t lateness_us[HB_LATENESS_RING];
    size_t lateness_count, lateness_next;
    hb_event events[HB_EVENT_CAP];
    size_t event_head, event_count;
} Engine;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Queue an event and wake the loop.  Called with the lock held. */
static void push_event(Engine *e, int kind, uint16_t peer, uint64_t epoch)
{
    if (e->event_count == HB_EVENT_CAP) {
        e->event_head = (e->event_head + 1) % HB_EVENT_CAP;
        e->event_count--;
        e->stats.events_dropped++;
    }
    hb_event *slot = &e->events[(e->event_head + e->event_count) % HB_EVENT_CAP];
    slot->kind = (uint8_t)kind;
    slot->peer = peer;
    slot->epoch = epoch;
    e->event_count++;
    uint64_t one = 1;
    ssize_t unused = write(e->notify_fd, &one, sizeof one); /* EAGAIN only if the counter is full: still readable */
    (void)unused;
}

/* One heartbeat to every peer on every network.  `deadline` < 0: a round out of turn (a new epoch to announce),
 * not counted as a tick nor in the lateness figures. */
static void send_round(Engine *e, int64_t deadline, uint64_t skipped)
{
    uint8_t datagram[HB_DATAGRAM_LEN];
    uint64_t sent = 0, errors = 0;
    int64_t now = mono_ns();
    int64_t late = deadline >= 0 && now > deadline ? now - deadline : 0;
    uint16_t ages[HB_AGE_SLOTS];
    for (int k = 0; k < HB_AGE_SLOTS; k++)
        ages[k] = k == e->node_id ? 0 : HB_AGE_NEVER;
    pthread_mutex_lock(&e->lock);
    uint64_t epoch = e->epoch, members = e->members;
    for (int p = 0; p < e->peer_count; p++) {
        hb_peer *peer = &e->peers[p];
        int64_t seen = 0;
        for (int i = 0; i < e->network_count; i++)
            if (peer->last_seen[i] > seen)
                seen = peer->last_seen[i];
        if (peer->id < HB_AGE_SLOTS && seen > 0) {
            int64_t age = (now - seen) / 1000000;
            ages[peer->id] = (uint16_t)(age < 0 ? 0 : age >= HB_AGE_NEVER ? HB_AGE_NEVER - 1 : age);
        }
    }
    pthread_mutex_unlock(&e->lock);
    for (int i = 0; i < e->network_count; i++) {
        hb_encode(e->mac_key, e->node_id, e->incarnation, ++e->seq, epoch, members, ages, datagram);
        for (int p = 0; p < e->peer_count; p++) {
            hb_peer *peer = &e->peers[p];
            ssize_t n = sendto(e->fds[i], datagram, sizeof datagram, MSG_DONTWAIT,
                               (struct sockaddr *)&peer->addr[i], peer->addr_len[i]);
            if (n == (ssize_t)sizeof datagram)
                sent++;
            else
                errors++;
        }
    }
    struct timespec cpu;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
    pthread_mutex_lock(&e->lock);
    e->stats.sent += sent;
    e->stats.send_errors += errors;
    if (deadline < 0) {
        e->stats.extra_rounds++;
        pthread_mutex_unlock(&e->lock);
        return;
    }
    e->stats.ticks++;
    e->stats.missed_deadlines += skipped;
    if (late > e->stats.max_send_lateness_ns)
        e->stats.max_send_lateness_ns = late;
    e->lateness_us[e->lateness_next] = (uint32_t)(late / 1000 > UINT32_MAX ? UINT32_MAX : late / 1000);
    e->lateness_next = (e->lateness_next + 1) % HB_LATENESS_RING;
    if (e->lateness_count < HB_LATENESS_RING)
        e->lateness_count++;
    e->stats.cpu_ns = (int64_t)cpu.tv_sec * 1000000000 + cpu.tv_nsec;
    pthread_mutex_unlock(&e->lock);
}

static hb_peer *find_peer(Engine *e, uint16_t id)
{
    for (int p = 0; p < e->peer_count; p++)
        if (e->peers[p].id == id)
            return &e->peers[p];
    return NULL;
}

static int retired(const hb_peer *peer, uint64_t incarnation)
{
    for (int r = 0; r < peer->retired_count; r++)
        if (peer->retired[r] == incarnation)
            return 1;
    return 0;
}

/* Judge one datagram received on network `net`.  Called with the lock held. */
static void accept_datagram(Engine *e, int net, const uint8_t *p, size_t n, int64_t now)
{
    if (!hb_well_formed(p, n)) {
        e->stats.rejected_malformed++;
        return;
    }
    hb_peer *peer = find_peer(e, hb_node(p));
    if (peer == NULL) {
        e->stats.rejected_unknown++;
        return;
    }
    if (!hb_mac_ok(e->mac_key, p)) {
        e->stats.rejected_mac++;
        return;
    }
    uint64_t incarnation = get_u64(p + 7), seq = get_u64(p + 15), epoch = get_u64(p + 23), members = get_u64(p + 31);
    if (peer->has_incarnation && incarnation == peer->incarnation) {
        if (seq <= peer->last_seq[net]) {
            e->stats.rejected_replay++;
            return;
        }
    } else if (retired(peer, incarnation)) {
        e->stats.rejected_replay++;
        return;
    } else { /* a new life of that peer */
        if (peer->has_incarnation) {
            peer->retired[peer->retired_next] = peer->incarnation;
            peer->retired_next = (peer->retired_next + 1) % HB_RETIRED;
            if (peer->retired_count < HB_RETIRED)
                peer->retired_count++;
        }
        peer->incarnation = incarnation;
        peer->has_incarnation = 1;
        memset(peer->last_seq, 0, sizeof peer->last_seq);
    }
    peer->last_seq[net] = seq;
    peer->last_seen[net] = now;
    peer->alive_since = now;
    e->stats.received++;
    if (peer->suspect) {
        peer->suspect = 0;
        push_event(e, EV_BACK, peer->id, 0);
    } else if (peer->last_valid != 0 && now - peer->last_valid > e->stats.max_receive_gap_ns) {
        e->stats.max_receive_gap_ns = now - peer->last_valid;
    }
    peer->last_valid = now;
    peer->epoch = epoch;
    peer->members = members;
    if (e->node_id < HB_AGE_SLOTS) {
        const uint8_t *slot = p + 39 + 2 * e->node_id;
        int64_t age = (int64_t)(slot[0] << 8 | slot[1]);
        peer->vouched_at = age == HB_AGE_NEVER ? 0 : now - age * 1000000;
    }
    if (epoch > e->epoch && !peer->ahead) {
        peer->ahead = 1;
        push_event(e, EV_AHEAD, peer->id, epoch);
    }
    /* A newer membership that leaves this node out: it is out, whatever its state (to be in a membership a node
     * must be in its proposal, and one membership is committed per epoch).  Revoke the lease now, without the
     * node's loop: the monitors stop the resources before the members take them over. */
    if (epoch > e->epoch && e->node_id < HB_AGE_SLOTS && !(members >> e->node_id & 1) && peer->revoked_for < epoch) {
        peer->revoked_for = epoch;
        if (e->lease != NULL) {
            volatile int64_t *revoked = e->lease + HB_LEASE_REVOKED / 8;
            if (*revoked < (int64_t)epoch)
                *revoked = (int64_t)epoch;
        }
        push_event(e, EV_REVOKED, peer->id, epoch);
    }
}

static void receive_burst(Engine *e, int net)
{
    uint8_t buf[HB_DATAGRAM_LEN + 1];
    for (int k = 0; k < HB_RECV_BURST; k++) {
        /* MSG_TRUNC: n is the datagram's real length, so an oversized one is seen as malformed */
        ssize_t n = recvfrom(e->fds[net], buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC, NULL, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* EAGAIN, or an ICMP error reported on the socket: nothing more to read now */
        }
        int64_t now = mono_ns();
        pthread_mutex_lock(&e->lock);
        accept_datagram(e, net, buf, (size_t)n, now);
        pthread_mutex_unlock(&e->lock);
    }
}

static void check_peers(Engine *e, int64_t now)
{
    int64_t silence_limit = e->period_ns * e->threshold;
    pthread_mutex_lock(&e->lock);
    for (int p = 0; p < e->peer_count; p++) {
        hb_peer *peer = &e->peers[p];
        if (!peer->suspect && now - peer->alive_since > silence_limit) {
            peer->suspect = 1;
            push_event(e, EV_SUSPECT, peer->id, 0);
        }
    }
    pthread_mutex_unlock(&e->lock);
}

static void *engine_thread(void *arg)
{
    Engine *e = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the main thread's business */

    struct pollfd pfd[3 + HB_MAX_NETWORKS];
    int nfds = 3 + e->network_count;
    pfd[0].fd = e->timer_fd;
    pfd[1].fd = e->stop_fd;
    pfd[2].fd = e->kick_fd;
    for (int i = 0; i < e->network_count; i++)
        pfd[3 + i].fd = e->fds[i];
    for (int i = 0; i < nfds; i++)
        pfd[i].events = POLLIN;

    uint64_t served = 0; /* deadline k is t0 + k * period; deadline 0 is served right now */
    send_round(e, e->t0, 0);
    for (;;) {
        if (poll(pfd, (nfds_t)nfds, -1) < 0) {
            if (errno == EINTR)
                continue;
            pthread_mutex_lock(&e->lock);
            e->stats.thread_errno = errno;
            pthread_mutex_unlock(&e->lock);
            break;
        }
        if (pfd[1].revents)
            break;
        int invalid = 0;
        for (int i = 0; i < nfds; i++)
            invalid |= pfd[i].revents & POLLNVAL;
        if (invalid) { /* a descriptor was closed under us: stop rather than spin */
            pthread_mutex_lock(&e->lock);
            e->stats.thread_errno = EBADF;
            pthread_mutex_unlock(&e->lock);
            break;
        }
        int tick = 0;
        if (pfd[0].revents & POLLIN) {
            uint64_t expirations = 0;
            if (read(e->timer_fd, &expirations, sizeof expirations) == (ssize_t)sizeof expirations
                && expirations > 0) {
                /* lateness is measured against the oldest deadline not yet served */
                int64_t deadline = e->t0 + (int64_t)(served + 1) * e->period_ns;
                served += expirations;
                send_round(e, deadline, expirations - 1);
                tick = 1;
            }
        }
        if (pfd[2].revents & POLLIN) {
            uint64_t kicks = 0;
            if (read(e->kick_fd, &kicks, sizeof kicks) == (ssize_t)sizeof kicks && kicks > 0)
                send_round(e, -1, 0);
        }
        for (int i = 0; i < e->network_count; i++)
            if (pfd[3 + i].revents)
                receive_burst(e, i);
        if (tick)
            check_peers(e, mono_ns());
    }
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Python-facing methods                                               */
/* ------------------------------------------------------------------ */

static int parse_address(PyObject *item, struct sockaddr_storage *ss, socklen_t *len)
{
    const char *host;
    int port;
    if (!PyArg_ParseTuple(item, "si", &host, &port))
        return -1;
    if (port < 1 || port > 65535) {
        PyErr_Format(PyExc_ValueError, "port %d out of range 1..65535", port);
        return -1;
    }
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof *v6;
    } else {
        PyErr_Format(PyExc_ValueError, "%s is not a numeric IPv4 or IPv6 address", host);
        return -1;
    }
    return 0;
}

static int parse_peers(Engine *e, PyObject *peers)
{
    PyObject *seq = PySequence_Fast(peers, "peers must be a sequence of (node_id, addresses)");
    if (seq == NULL)
        return -1;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    e->peers = PyMem_Calloc(count > 0 ? (size_t)count : 1, sizeof(hb_peer));
    if (e->peers == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t p = 0; p < count; p++) {
        int id;
        PyObject *addresses;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, p), "iO", &id, &addresses))
            goto fail;
        if (id < 0 || id > 65535 || id == e->node_id) {
            PyErr_Format(PyExc_ValueError, "peer id %d must be in 0..65535 and differ from the own node id", id);
            goto fail;
        }
        PyObject *addr_seq = PySequence_Fast(addresses, "a peer's addresses must be a sequence");
        if (addr_seq == NULL)
            goto fail;
        if (PySequence_Fast_GET_SIZE(addr_seq) != e->network_count) {
            Py_DECREF(addr_seq);
            PyErr_Format(PyExc_ValueError, "peer %d needs one address per network (%d)", id, e->network_count);
            goto fail;
        }
        hb_peer *peer = &e->peers[p];
        peer->id = (uint16_t)id;
        for (int i = 0; i < e->network_count; i++) {
            if (parse_address(PySequence_Fast_GET_ITEM(addr_seq, i), &peer->addr[i], &peer->addr_len[i]) < 0) {
                Py_DECREF(addr_seq);
                goto fail;
            }
        }
        Py_DECREF(addr_seq);
        e->peer_count = (int)p + 1;
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    return -1;
}

static PyObject *Engine_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"node_id", "mac_key", "incarnation", "fds", "peers",
                             "period_ns", "threshold", "notify_fd", "lease_fd", NULL};
    int node_id, threshold, notify_fd, lease_fd = -1;
    Py_buffer key;
    unsigned long long incarnation;
    long long period_ns;
    PyObject *fds, *peers;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iy*KOOLii|i:Engine", kwlist, &node_id, &key, &incarnation, &fds,
                                     &peers, &period_ns, &threshold, &notify_fd, &lease_fd))
        return NULL;
    Engine *e = (Engine *)type->tp_alloc(type, 0);
    if (e == NULL) {
        PyBuffer_Release(&key);
        return NULL;
    }
    e->timer_fd = e->stop_fd = e->kick_fd = -1;
    e->lease_fd = lease_fd;
    e->lease = NULL;
    e->state = STATE_NEW;
    pthread_mutex_init(&e->lock, NULL);
    if (node_id < 0 || node_id > 65535 || key.len != 32 || period_ns < 1 || threshold < 1 || notify_fd < 0) {
        PyErr_SetString(PyExc_ValueError, "node_id must be in 0..65535, mac_key 32 bytes, period_ns and "
                                          "threshold positive, notify_fd an open descriptor");
        goto fail;
    }
    e->node_id = (uint16_t)node_id;
    memcpy(e->mac_key, key.buf, 32);
    e->incarnation = incarnation;
    e->period_ns = period_ns;
    e->threshold = threshold;
    e->notify_fd = notify_fd;

    PyObject *fd_seq = PySequence_Fast(fds, "fds must be a sequence of socket descriptors");
    if (fd_seq == NULL)
        goto fail;
    Py_ssize_t nets = PySequence_Fast_GET_SIZE(fd_seq);
    if (nets < 1 || nets > HB_MAX_NETWORKS) {
        Py_DECREF(fd_seq);
        PyErr_Format(PyExc_ValueError, "between 1 and %d networks are supported", HB_MAX_NETWORKS);
        goto fail;
    }
    e->network_count = (int)nets;
    for (Py_ssize_t i = 0; i < nets; i++) {
        long fd = PyLong_AsLong(PySequence_Fast_GET_ITEM(fd_seq, i));
        if (fd < 0) {
            Py_DECREF(fd_seq);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "socket descriptors must be non-negative");
            goto fail;
        }
        e->fds[i] = (int)fd;
    }
    Py_DECREF(fd_seq);
    if (parse_peers(e, peers) < 0)
        goto fail;
    PyBuffer_Release(&key);
    return (PyObject *)e;
fail:
    PyBuffer_Release(&key);
    Py_DECREF(e);
    return NULL;
}

static void engine_join(Engine *e)
{
    if (e->state != STATE_RUNNING)
        return;
    uint64_t one = 1;
    ssize_t unused = write(e->stop_fd, &one, sizeof one);
    (void)unused;
    e->state = STATE_STOPPING; /* a second stop() while this one waits must not join again */
    Py_BEGIN_ALLOW_THREADS
    pthread_join(e->thread, NULL);
    Py_END_ALLOW_THREADS
    e->state = STATE_STOPPED;
    close(e->timer_fd);
    close(e->stop_fd);
    close(e->kick_fd);
    e->timer_fd = e->stop_fd = e->kick_fd = -1;
    if (e->lease != NULL) {
        munmap((void *)e->lease, HB_LEASE_SIZE);
        e->lease = NULL;
    }
}

static void Engine_dealloc(Engine *e)
{
    engine_join(e);
    PyMem_Free(e->peers);
    pthread_mutex_destroy(&e->lock);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static PyObject *Engine_start(Engine *e, PyObject *Py_UNUSED(ignored))
{
    if (e->state != STATE_NEW) {
        PyErr_SetString(PyExc_RuntimeError, "this engine has already been started; create a new one");
        return NULL;
    }
    e->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    e->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    e->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (e->timer_fd < 0 || e->stop_fd < 0 || e->kick_fd < 0)
        goto os_error;
    if (e->lease_fd >= 0) {
        void *page = mmap(NULL, HB_LEASE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, e->lease_fd, 0);
        if (page == MAP_FAILED)
            goto os_error;
        if (memcmp(page, HB_LEASE_MAGIC, 8) != 0) {
            munmap(page, HB_LEASE_SIZE);
            errno = EINVAL;
            goto os_error;
        }
        e->lease = page;
    }
    e->t0 = mono_ns();
    for (int p = 0; p < e->peer_count; p++)
        e->peers[p].alive_since = e->t0;
    struct itimerspec spec;
    int64_t first = e->t0 + e->period_ns;
    spec.it_value.tv_sec = first / 1000000000;
    spec.it_value.tv_nsec = first % 1000000000;
    spec.it_interval.tv_sec = e->period_ns / 1000000000;
    spec.it_interval.tv_nsec = e->period_ns % 1000000000;
    if (timerfd_settime(e->timer_fd, TFD_TIMER_ABSTIME, &spec, NULL) < 0)
        goto os_error;
    int rc = pthread_create(&e->thread, NULL, engine_thread, e);
    if (rc != 0) {
        errno = rc;
        goto os_error;
    }
    e->state = STATE_RUNNING;
    Py_RETURN_NONE;
os_error:
    PyErr_SetFromErrno(PyExc_OSError);
    if (e->timer_fd >= 0)
        close(e->timer_fd);
    if (e->stop_fd >= 0)
        close(e->stop_fd);
    if (e->kick_fd >= 0)
        close(e->kick_fd);
    e->timer_fd = e->stop_fd = e->kick_fd = -1;
    if (e->lease != NULL) {
        munmap((void *)e->lease, HB_LEASE_SIZE);
        e->lease = NULL;
    }
    return NULL;
}

static PyObject *Engine_stop(Engine *e, PyObject *Py_UNUSED(ignored))
{
    engine_join(e);
    if (e->state == STATE_NEW)
        e->state = STATE_STOPPED;
    Py_RETURN_NONE;
}

static PyObject *Engine_set_epoch(Engine *e, PyObject *args)
{
    unsigned long long epoch, members = 0;
    if (!PyArg_ParseTuple(args, "K|K:set_epoch", &epoch, &members))
        return NULL;
    pthread_mutex_lock(&e->lock);
    int changed = e->epoch != epoch || e->members != members;
    e->epoch = epoch;
    e->members = members;
    for (int p = 0; p < e->peer_count; p++)
        e->peers[p].ahead = 0;
    pthread_mutex_unlock(&e->lock);
    if (changed && e->state == STATE_RUNNING) { /* announce it now, out of turn */
        uint64_t one = 1;
        ssize_t unused = write(e->kick_fd, &one, sizeof one);
        (void)unused;
    }
    Py_RETURN_NONE;
}

static PyObject *Engine_read_events(Engine *e, PyObject *Py_UNUSED(ignored))
{
    hb_event copy[HB_EVENT_CAP];
    size_t count;
    pthread_mutex_lock(&e->lock);
    count = e->event_count;
    for (size_t k = 0; k < count; k++)
        copy[k] = e->events[(e->event_head + k) % HB_EVENT_CAP];
    e->event_head = e->event_count = 0;
    pthread_mutex_unlock(&e->lock);
    PyObject *list = PyList_New((Py_ssize_t)count);
    if (list == NULL)
        return NULL;
    for (size_t k = 0; k < count; k++) {
        const char *kind = copy[k].kind == EV_SUSPECT  ? "suspect"
                           : copy[k].kind == EV_BACK   ? "back"
                           : copy[k].kind == EV_AHEAD  ? "ahead"
                                                       : "revoked";
        PyObject *item = Py_BuildValue("(siK)", kind, (int)copy[k].peer, (unsigned long long)copy[k].epoch);
        if (item == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)k, item);
    }
    return list;
}

static PyObject *Engine_last_seen(Engine *e, PyObject *Py_UNUSED(ignored))
{
    int64_t seen[HB_MAX_NETWORKS];
    PyObject *result = PyDict_New();
    if (result == NULL)
        return NULL;
    for (int p = 0; p < e->peer_count; p++) {
        pthread_mutex_lock(&e->lock);
        memcpy(seen, e->peers[p].last_seen, sizeof seen);
        pthread_mutex_unlock(&e->lock);
        PyObject *list = PyList_New(e->network_count);
        if (list == NULL)
            goto fail;
        for (int i = 0; i < e->network_count; i++) {
            PyObject *v = seen[i] ? PyLong_FromLongLong(seen[i]) : Py_NewRef(Py_None);
            if (v == NULL) {
                Py_DECREF(list);
                goto fail;
            }
            PyList_SET_ITEM(list, i, v);
        }
        PyObject *key = PyLong_FromLong(e->peers[p].id);
        int rc = key == NULL ? -1 : PyDict_SetItem(result, key, list);
        Py_XDECREF(key);
        Py_DECREF(list);
        if (rc < 0)
            goto fail;
    }
    return result;
fail:
    Py_DECREF(result);
    return NULL;
}

static PyObject *Engine_vouches(Engine *e, PyObject *Py_UNUSED(ignored))
{
    PyObject *result = PyDict_New();
    if (result == NULL)
        return NULL;
    for (int p = 0; p < e->peer_count; p++) {
        pthread_mutex_lock(&e->lock);
        int64_t at = e->peers[p].vouched_at;
        unsigned long long epoch = e->peers[p].epoch, members = e->peers[p].members;
        pthread_mutex_unlock(&e->lock);
        PyObject *key = PyLong_FromLong(e->peers[p].id);
        PyObject *value = at > 0 ? Py_BuildValue("(LKK)", (long long)at, epoch, members)
                                 : Py_BuildValue("(OKK)", Py_None, epoch, members);
        int rc = key == NULL || value == NULL ? -1 : PyDict_SetItem(result, key, value);
        Py_XDECREF(key);
        Py_XDECREF(value);
        if (rc < 0) {
            Py_DECREF(result);
            return NULL;
        }
    }
    return result;
}

static PyObject *Engine_stats(Engine *e, PyObject *Py_UNUSED(ignored))
{
    hb_stats s;
    pthread_mutex_lock(&e->lock);
    s = e->stats;
    pthread_mutex_unlock(&e->lock);
    uint64_t rejected = s.rejected_malformed + s.rejected_unknown + s.rejected_mac + s.rejected_replay;
    return Py_BuildValue(
        "{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:L,s:L,s:L,s:i}",
        "ticks", (unsigned long long)s.ticks, "sent", (unsigned long long)s.sent,
        "send_errors", (unsigned long long)s.send_errors, "received", (unsigned long long)s.received,
        "rejected", (unsigned long long)rejected, "rejected_malformed", (unsigned long long)s.rejected_malformed,
        "rejected_unknown", (unsigned long long)s.rejected_unknown, "rejected_mac", (unsigned long long)s.rejected_mac,
        "rejected_replay", (unsigned long long)s.rejected_replay,
        "missed_deadlines", (unsigned long long)s.missed_deadlines,
        "events_dropped", (unsigned long long)s.events_dropped,
        "extra_rounds", (unsigned long long)s.extra_rounds,
        "max_send_lateness_us", (long long)(s.max_send_lateness_ns / 1000),
        "max_receive_gap_us", (long long)(s.max_receive_gap_ns / 1000), "cpu_us", (long long)(s.cpu_ns / 1000),
        "thread_errno", s.thread_errno);
}

static PyObject *Engine_recent_lateness_us(Engine *e, PyObject *Py_UNUSED(ignored))
{
    PyObject *list;
    pthread_mutex_lock(&e->lock);
    size_t count = e->lateness_count;
    size_t first = (e->lateness_next + HB_LATENESS_RING - count) % HB_LATENESS_RING;
    uint32_t *copy = PyMem_RawMalloc((count ? count : 1) * sizeof(uint32_t));
    if (copy != NULL)
        for (size_t k = 0; k < count; k++)
            copy[k] = e->lateness_us[(first + k) % HB_LATENESS_RING];
    pthread_mutex_unlock(&e->lock);
    if (copy == NULL)
        return PyErr_NoMemory();
    list = PyList_New((Py_ssize_t)count);
    for (size_t k = 0; list != NULL && k < count; k++) {
        PyObject *v = PyLong_FromUnsignedLong(copy[k]);
        if (v == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)k, v);
    }
    PyMem_RawFree(copy);
    return list;
}

static PyMethodDef Engine_methods[] = {
    {"start", (PyCFunction)Engine_start, METH_NOARGS, "Start the thread; it sends its first heartbeat at once."},
    {"stop", (PyCFunction)Engine_stop, METH_NOARGS, "Stop the thread and wait for it; idempotent."},
    {"set_epoch", (PyCFunction)Engine_set_epoch, METH_VARARGS,
     "set_epoch(epoch, members=0): the membership this node installed (its members as a bit mask): sent from "
     "now on; peers are reported ahead of it anew."},
    {"read_events", (PyCFunction)Engine_read_events, METH_NOARGS, "Drain the queued (kind, peer) events."},
    {"last_seen", (PyCFunction)Engine_last_seen, METH_NOARGS, "Per peer, per network: monotonic ns or None."},
    {"vouches", (PyCFunction)Engine_vouches, METH_NOARGS,
     "Per peer: (when it last heard this node, in this node's monotonic ns, or None; its epoch; its members)."},
    {"stats", (PyCFunction)Engine_stats, METH_NOARGS, "Counters and timing figures."},
    {"recent_lateness_us", (PyCFunction)Engine_recent_lateness_us, METH_NOARGS,
     "The lateness of the most recent sends (up to 4096), oldest first, in microseconds."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "wolfpack.runtime.heartbeat._hbtimer.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Engine(node_id, mac_key, incarnation, fds, peers, period_ns, threshold, notify_fd)\n\n"
              "The heartbeat thread.  It borrows the socket and notify descriptors: the caller keeps\n"
              "them open until stop() has returned.",
    .tp_new = Engine_new,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_methods = Engine_methods,
};

/* ------------------------------------------------------------------ */
/* Module functions (the codec, exposed for tests)                     */
/* ------------------------------------------------------------------ */

static PyObject *mod_sha256(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer data;
    uint8_t out[32];
    if (!PyArg_ParseTuple(args, "y*:sha256", &data))
        return NULL;
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, data.buf, (size_t)data.len);
    sha256_final(&c, out);
    PyBuffer_Release(&data);
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

static PyObject *mod_hmac_sha256(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer key, msg;
    uint8_t out[32];
    if (!PyArg_ParseTuple(args, "y*y*:hmac_sha256", &key, &msg))
        return NULL;
    hmac_sha256(key.buf, (size_t)key.len, msg.buf, (size_t)msg.len, out);
    PyBuffer_Release(&key);
    PyBuffer_Release(&msg);
    return PyBytes_FromStringAndSize((const char *)out, 32);
}

static PyObject *mod_encode(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer key;
    int node;
    unsigned long long incarnation, seq, epoch, members = 0;
    PyObject *age_list = Py_None;
    uint8_t out[HB_DATAGRAM_LEN];
    uint16_t ages[HB_AGE_SLOTS];
    if (!PyArg_ParseTuple(args, "y*iKKK|KO:encode", &key, &node, &incarnation, &seq, &epoch, &members, &age_list))
        return NULL;
    if (key.len != 32 || node < 0 || node > 65535) {
        PyBuffer_Release(&key);
        PyErr_SetString(PyExc_ValueError, "mac_key must be 32 bytes and node_id in 0..65535");
        return NULL;
    }
    for (int k = 0; k < HB_AGE_SLOTS; k++)
        ages[k] = HB_AGE_NEVER;
    if (age_list != Py_None) {
        PyObject *seq_ages = PySequence_Fast(age_list, "ages must be a sequence of 64 integers");
        if (seq_ages == NULL || PySequence_Fast_GET_SIZE(seq_ages) != HB_AGE_SLOTS) {
            Py_XDECREF(seq_ages);
            PyBuffer_Release(&key);
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "ages must be 64 values in 0..65535");
            return NULL;
        }
        for (int k = 0; k < HB_AGE_SLOTS; k++) {
            long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq_ages, k));
            if (v < 0 || v > HB_AGE_NEVER) {
                Py_DECREF(seq_ages);
                PyBuffer_Release(&key);
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_ValueError, "ages must be 64 values in 0..65535");
                return NULL;
            }
            ages[k] = (uint16_t)v;
        }
        Py_DECREF(seq_ages);
    }
    hb_encode(key.buf, (uint16_t)node, incarnation, seq, epoch, members, ages, out);
    PyBuffer_Release(&key);
    return PyBytes_FromStringAndSize((const char *)out, HB_DATAGRAM_LEN);
}

static PyObject *mod_decode(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer key, data;
    if (!PyArg_ParseTuple(args, "y*y*:decode", &key, &data))
        return NULL;
    PyObject *result;
    if (key.len != 32) {
        PyErr_SetString(PyExc_ValueError, "mac_key must be 32 bytes");
        result = NULL;
    } else if (!hb_well_formed(data.buf, (size_t)data.len) || !hb_mac_ok(key.buf, data.buf)) {
        result = Py_NewRef(Py_None);
    } else {
        const uint8_t *p = data.buf;
        PyObject *ages = PyTuple_New(HB_AGE_SLOTS);
        if (ages == NULL) {
            PyBuffer_Release(&key);
            PyBuffer_Release(&data);
            return NULL;
        }
        for (int k = 0; k < HB_AGE_SLOTS; k++)
            PyTuple_SET_ITEM(ages, k, PyLong_FromLong(p[39 + 2 * k] << 8 | p[40 + 2 * k]));
        result = Py_BuildValue("(iKKKKN)", (int)hb_node(p), (unsigned long long)get_u64(p + 7),
                               (unsigned long long)get_u64(p + 15), (unsigned long long)get_u64(p + 23),
                               (unsigned long long)get_u64(p + 31), ages);
    }
    PyBuffer_Release(&key);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef module_methods[] = {
    {"sha256", mod_sha256, METH_VARARGS, "sha256(data) -> the 32-byte digest (this module's own SHA-256)."},
    {"hmac_sha256", mod_hmac_sha256, METH_VARARGS, "hmac_sha256(key, msg) -> the 32-byte HMAC-SHA256."},
    {"encode", mod_encode, METH_VARARGS,
     "encode(mac_key, node_id, incarnation, seq, epoch, members=0, ages=None) -> a heartbeat datagram."},
    {"decode", mod_decode, METH_VARARGS,
     "decode(mac_key, datagram) -> (node_id, incarnation, seq, epoch, members, ages), or None if malformed or "
     "forged."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef hbtimer_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "wolfpack.runtime.heartbeat._hbtimer",
    .m_doc = "The heartbeat engine in C: a thread that keeps its period without the GIL.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__hbtimer(void)
{
    if (PyType_Ready(&EngineType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&hbtimer_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Engine", (PyObject *)&EngineType) < 0
        || PyModule_AddIntConstant(m, "DATAGRAM_LEN", HB_DATAGRAM_LEN) < 0
        || PyModule_AddIntConstant(m, "MAX_NETWORKS", HB_MAX_NETWORKS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
