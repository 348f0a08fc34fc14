/*
 * http.c - bounded, incremental HTTP/1.1 request parsing on top of llhttp.
 *
 * llhttp does the grammar; this file adds what a server exposed to the
 * internet needs around it: every string the request carries is copied into
 * one buffer fixed at _new (no allocation per header), every phase of the
 * request has a byte bound, and feed() stops exactly at the end of a request so
 * pipelined requests and the bytes after an Upgrade reach their owner.
 *
 * llhttp is paused twice per request: in on_headers_complete, so that the raw
 * size of the head is known to the byte (it is the bound for 431), and in
 * on_message_complete, so that llhttp_get_error_pos() tells how many bytes the
 * request used.
 */
#include "wsb/http.h"

#include <limits.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A body buffer larger than this is released by reset(), so that an idle
 * keep-alive connection does not pin the largest body it ever received. */
#define BODY_KEEP_BYTES 4096
#define BODY_MIN_ALLOC  256
/* The head buffer starts here and doubles up to max_header_bytes: a typical
 * upgrade request is 200-600 bytes, and thousands of connections can be in
 * their handshake at once (a reconnect storm), each holding this buffer. */
#define HEAD_MIN_ALLOC 512

typedef enum { COLLECT_NONE, COLLECT_METHOD, COLLECT_URL, COLLECT_FIELD, COLLECT_VALUE } collect_t;

struct wsb_http_request_s {
    llhttp_t parser;

    size_t max_body;
    size_t head_raw;     /* raw bytes of request line + headers seen so far */
    size_t body_raw;     /* raw bytes after the head (body and chunk framing) */
    size_t body_raw_max; /* bound on body_raw */
    char *body;          /* grows up to max_body; kept across small requests */
    size_t body_cap;
    size_t body_len;

    wsb_str_t method;
    wsb_str_t url;
    wsb_http_header_t headers[WSB_HTTP_MAX_HEADERS];
    size_t header_count;
    collect_t collecting; /* which string the pieces being appended belong to */
    size_t piece_start;   /* offset in head[] where that string starts */
    char version_text[4]; /* "1.1" as sent, to tell 505 from 400 on bad versions */
    size_t version_len;

    int result; /* 0 (complete), WSB_EAGAIN, WSB_EHTTP or WSB_ENOMEM */
    int status; /* HTTP status to answer with after WSB_EHTTP */
    const char *error;
    int version;
    bool headers_done;
    bool message_done;
    bool keep_alive;
    bool upgrade;
    bool expect_continue; /* HTTP/1.1 "Expect: 100-continue", not yet answered */

    size_t head_cap;   /* bound: max_header_bytes */
    size_t head_alloc; /* bytes allocated at head (grows up to head_cap) */
    size_t head_used;
    char *head; /* method, URL, header names and values */
};

static int fail(wsb_http_request_t *r, int status, const char *reason)
{
    /* The first failure wins: llhttp may report a generic callback error
     * after one of our callbacks has already named the precise cause. */
    if (r->status == 0) {
        r->status = status;
        r->error = reason;
    }
    return -1;
}

static wsb_http_request_t *from_parser(llhttp_t *p)
{
    return (wsb_http_request_t *)p->data;
}

static void rebase(wsb_str_t *s, const char *old_base, char *new_base)
{
    if (s->p != NULL) {
        s->p = new_base + (s->p - old_base);
    }
}

/* Makes room for `need` bytes in head; every string already collected
 * points into it and moves with it. */
static int grow_head(wsb_http_request_t *r, size_t need)
{
    size_t cap = r->head_alloc < HEAD_MIN_ALLOC ? HEAD_MIN_ALLOC : r->head_alloc;
    while (cap < need) {
        cap *= 2;
    }
    if (cap > r->head_cap) {
        cap = r->head_cap;
    }
    char *head = malloc(cap);
    if (head == NULL) {
        r->result = WSB_ENOMEM;
        return fail(r, 500, "out of memory for the request head");
    }
    if (r->head != NULL) {
        memcpy(head, r->head, r->head_used);
        rebase(&r->method, r->head, head);
        rebase(&r->url, r->head, head);
        size_t n = r->header_count < WSB_HTTP_MAX_HEADERS ? r->header_count + 1 : r->header_count;
        for (size_t i = 0; i < n; i++) {
            rebase(&r->headers[i].name, r->head, head);
            rebase(&r->headers[i].value, r->head, head);
        }
        free(r->head);
    }
    r->head = head;
    r->head_alloc = cap;
    return 0;
}

static int append_head(wsb_http_request_t *r, collect_t what, const char *at, size_t len)
{
    if (r->collecting != what) {
        r->collecting = what;
        r->piece_start = r->head_used;
    }
    /* Unreachable while the raw head is bounded by the same size (every
     * copied byte is a request byte), but the copy must never depend on that. */
    if (len > r->head_cap - r->head_used) {
        return fail(r, 431, "request head exceeds max_header_bytes");
    }
    if (len > r->head_alloc - r->head_used && grow_head(r, r->head_used + len) != 0) {
        return -1;
    }
    if (len > 0) {
        memcpy(r->head + r->head_used, at, len);
        r->head_used += len;
    }
    return 0;
}

static wsb_str_t finish_piece(wsb_http_request_t *r, collect_t what)
{
    wsb_str_t s;
    if (r->collecting == what) {
        s.p = r->head + r->piece_start;
        s.len = r->head_used - r->piece_start;
    } else {
        /* llhttp reported an empty string without a data callback. */
        s.p = r->head + r->head_used;
        s.len = 0;
    }
    r->collecting = COLLECT_NONE;
    return s;
}

static int on_method(llhttp_t *p, const char *at, size_t len)
{
    return append_head(from_parser(p), COLLECT_METHOD, at, len);
}

static int on_method_complete(llhttp_t *p)
{
    wsb_http_request_t *r = from_parser(p);
    r->method = finish_piece(r, COLLECT_METHOD);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    return append_head(from_parser(p), COLLECT_URL, at, len);
}

static int on_url_complete(llhttp_t *p)
{
    wsb_http_request_t *r = from_parser(p);
    r->url = finish_piece(r, COLLECT_URL);
    return 0;
}

static int on_version(llhttp_t *p, const char *at, size_t len)
{
    wsb_http_request_t *r = from_parser(p);
    /* Only "D.D" is ever interesting; longer text is kept truncated, which
     * still tells it apart from a well-formed version. */
    for (size_t i = 0; i < len && r->version_len < sizeof(r->version_text); i++) {
        r->version_text[r->version_len++] = at[i];
    }
    return 0;
}

static bool version_supported(const llhttp_t *p)
{
    return p->http_major == 1 && p->http_minor <= 1;
}

static int on_version_complete(llhttp_t *p)
{
    /* Refusing here, before any header is read, answers "PRI * HTTP/2.0" and
     * other versions with 505 instead of letting llhttp switch modes. */
    if (!version_supported(p)) {
        return fail(from_parser(p), 505, "HTTP version not supported (only 1.0 and 1.1)");
    }
    return 0;
}

static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        return true;
    }
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    wsb_http_request_t *r = from_parser(p);
    if (r->headers_done) {
        return 0; /* trailer fields of a chunked body are not kept */
    }
    /* The field count is checked once the name is complete, not here: llhttp
     * delivers a name in pieces only when it spans reads, and a check made on
     * a piece would let the read boundaries decide between 431 and a 400 for
     * a bad character later in the same name. */
    return append_head(r, COLLECT_FIELD, at, len);
}

static int on_header_field_complete(llhttp_t *p)
{
    wsb_http_request_t *r = from_parser(p);
    if (r->headers_done) {
        return 0;
    }
    wsb_str_t name = finish_piece(r, COLLECT_FIELD);
    /* Lenient llhttp accepts "X y:" and similar; a field name is a token
     * (RFC 9110 5.1), and a server must reject anything else (RFC 9112 5.1). */
    if (name.len == 0) {
        return fail(r, 400, "empty header field name");
    }
    for (size_t i = 0; i < name.len; i++) {
        if (!is_tchar((unsigned char)name.p[i])) {
            return fail(r, 400, "invalid character in header field name");
        }
    }
    if (r->header_count == WSB_HTTP_MAX_HEADERS) {
        return fail(r, 431, "more than WSB_HTTP_MAX_HEADERS (64) header fields");
    }
    r->headers[r->header_count].name = name;
    r->headers[r->header_count].value = (wsb_str_t){r->head + r->head_used, 0};
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    wsb_http_request_t *r = from_parser(p);
    if (r->headers_done) {
        return 0;
    }
    return append_head(r, COLLECT_VALUE, at, len);
}

static int on_header_value_complete(llhttp_t *p)
{
    wsb_http_request_t *r = from_parser(p);
    if (r->headers_done) {
        return 0;
    }
    wsb_str_t value = finish_piece(r, COLLECT_VALUE);
    if (r->header_count == WSB_HTTP_MAX_HEADERS) {
        return fail(r, 431, "more than WSB_HTTP_MAX_HEADERS (64) header fields");
    }
    /* llhttp drops leading whitespace but keeps trailing OWS. */
    while (value.len > 0 && (value.p[value.len - 1] == ' ' || value.p[value.len - 1] == '\t')) {
        value.len--;
    }
    r->headers[r->header_count].value = value;
    r->header_count++;
    return 0;
}

static int grow_body(wsb_http_request_t *r, size_t need)
{
    if (need <= r->body_cap) {
        return 0;
    }
    size_t cap = r->body_cap < BODY_MIN_ALLOC ? BODY_MIN_ALLOC : r->body_cap;
    while (cap < need) {
        cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
    }
    if (cap > r->max_body) {
        cap = r->max_body;
    }
    char *body = realloc(r->body, cap);
    if (body == NULL) {
        r->result = WSB_ENOMEM;
        return fail(r, 500, "out of memory for the request body");
    }
    r->body = body;
    r->body_cap = cap;
    return 0;
}

/* Occurrences of header `name` (ASCII case-insensitive). */
static size_t header_occurrences(const wsb_http_request_t *r, const char *name, wsb_str_t *first)
{
    size_t n = 0;
    for (size_t i = 0; i < r->header_count; i++) {
        if (wsb_str_eq_nocase(r->headers[i].name, name)) {
            if (n++ == 0 && first != NULL) {
                *first = r->headers[i].value;
            }
        }
    }
    return n;
}

/* Framing and routing rules of RFC 9112 and RFC 9110 that llhttp leaves to
 * the server. Returns 0 or fail()'s result. */
static int check_head(wsb_http_request_t *r)
{
    /* Two Origins: a check of the first would be bypassed by a proxy or
     * framework that believes the second. */
    if (header_occurrences(r, "Origin", NULL) > 1) {
        return fail(r, 400, "more than one Origin header");
    }
    /* RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 request means the
     * framing is faulty (an old intermediary would read it by its
     * Content-Length or until close): refuse and close, never parse it. */
    if (r->version == 10 && header_occurrences(r, "Transfer-Encoding", NULL) > 0) {
        return fail(r, 400, "Transfer-Encoding in an HTTP/1.0 request");
    }
    /* RFC 9110 10.1.1: 100-continue is the only expectation; any other gets
     * 417. An HTTP/1.0 client's expectation is ignored. */
    wsb_str_t expect = WSB_STR_NULL;
    if (header_occurrences(r, "Expect", &expect) > 0 && r->version == 11) {
        if (!wsb_str_eq_nocase(expect, "100-continue")) {
            return fail(r, 417, "unsupported Expect (only 100-continue)");
        }
        r->expect_continue = true;
    }
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    wsb_http_request_t *r = from_parser(p);
    r->headers_done = true;
    /* A request line without a version ("GET /") is HTTP/0.9 to llhttp. */
    if (!version_supported(p)) {
        return fail(r, 505, "HTTP version not supported (only 1.0 and 1.1)");
    }
    r->version = p->http_major * 10 + p->http_minor;
    if (check_head(r) != 0) {
        return -1;
    }
    r->upgrade = p->upgrade != 0;
    if ((p->flags & F_CHUNKED) == 0 && (p->flags & F_CONTENT_LENGTH) != 0) {
        if (p->content_length > r->max_body) {
            return fail(r, 413, "Content-Length exceeds max_body_bytes");
        }
        /* Allocating once for the announced length avoids regrowth. */
        if (grow_body(r, (size_t)p->content_length) != 0) {
            return -1;
        }
    }
    return HPE_PAUSED;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    wsb_http_request_t *r = from_parser(p);
    if (len > r->max_body - r->body_len) {
        return fail(r, 413, "request body exceeds max_body_bytes");
    }
    if (grow_body(r, r->body_len + len) != 0) {
        return -1;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    wsb_http_request_t *r = from_parser(p);
    r->message_done = true;
    /* Read now: llhttp clears its flags right after this callback. */
    r->keep_alive = llhttp_should_keep_alive(p) != 0;
    r->upgrade = p->upgrade != 0;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_method = on_method,
    .on_method_complete = on_method_complete,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_version = on_version,
    .on_version_complete = on_version_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void clear_request(wsb_http_request_t *r)
{
    r->head_raw = 0;
    r->body_raw = 0;
    r->body_len = 0;
    r->method = WSB_STR_NULL;
    r->url = WSB_STR_NULL;
    r->header_count = 0;
    r->collecting = COLLECT_NONE;
    r->piece_start = 0;
    r->version_len = 0;
    r->result = WSB_EAGAIN;
    r->status = 0;
    r->error = NULL;
    r->version = 0;
    r->headers_done = false;
    r->message_done = false;
    r->keep_alive = false;
    r->upgrade = false;
    r->expect_continue = false;
    r->head_used = 0;
}

wsb_http_request_t *wsb_http_request_new(size_t max_header_bytes, size_t max_body_bytes)
{
    if (max_header_bytes == 0) {
        max_header_bytes = WSB_HTTP_DEFAULT_MAX_HEAD;
    }
    wsb_http_request_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    r->head_alloc = max_header_bytes < HEAD_MIN_ALLOC ? max_header_bytes : HEAD_MIN_ALLOC;
    r->head = malloc(r->head_alloc);
    if (r->head == NULL) {
        free(r);
        return NULL;
    }
    r->head_cap = max_header_bytes;
    r->max_body = max_body_bytes;
    /* Chunk size lines, extensions and trailers are not stored, but they are
     * still input a client can stream forever. Besides the body itself they
     * get the room of one more head plus one more body (saturating). */
    size_t framing = max_header_bytes + max_body_bytes < max_header_bytes
                         ? SIZE_MAX
                         : max_header_bytes + max_body_bytes;
    r->body_raw_max = framing + max_body_bytes < framing ? SIZE_MAX : framing + max_body_bytes;
    llhttp_init(&r->parser, HTTP_REQUEST, &settings);
    r->parser.data = r;
    clear_request(r);
    return r;
}

void wsb_http_request_free(wsb_http_request_t *r)
{
    if (r == NULL) {
        return;
    }
    free(r->body);
    free(r->head);
    free(r);
}

void wsb_http_request_reset(wsb_http_request_t *r)
{
    llhttp_reset(&r->parser);
    if (r->body_cap > BODY_KEEP_BYTES) {
        free(r->body);
        r->body = NULL;
        r->body_cap = 0;
    }
    clear_request(r);
}

static int map_llhttp_error(const wsb_http_request_t *r, llhttp_errno_t err)
{
    if (err == HPE_PAUSED_H2_UPGRADE) {
        return 505;
    }
    if (err == HPE_INVALID_VERSION) {
        /* llhttp says the same for "HTTP/3.0" (well-formed, unsupported: 505)
         * and "HTTP/1.x" or "HTTP/1.10" (malformed: 400). */
        const char *v = r->version_text;
        bool well_formed = r->version_len == 3 && v[0] >= '0' && v[0] <= '9' && v[1] == '.' &&
                           v[2] >= '0' && v[2] <= '9';
        bool supported = well_formed && v[0] == '1' && (v[2] == '0' || v[2] == '1');
        return well_formed && !supported ? 505 : 400;
    }
    return 400;
}

int wsb_http_request_feed(wsb_http_request_t *r, const char *data, size_t len, size_t *consumed)
{
    *consumed = 0;
    if (r->result != WSB_EAGAIN) {
        return r->result; /* complete or failed: the caller must reset() first */
    }
    if (data == NULL) {
        data = ""; /* llhttp computes pointers from data even when len is 0 */
        len = 0;
    }
    size_t off = 0;
    for (;;) {
        const char *start = data + off;
        size_t n = len - off;
        bool capped = false;
        bool in_head = !r->headers_done;
        /* Never hand llhttp more bytes than the bound of the current phase
         * allows: a huge request is refused without parsing all of it, and
         * the outcome depends on byte positions only, never on how the input
         * was split into reads. */
        size_t room = in_head ? r->head_cap - r->head_raw : r->body_raw_max - r->body_raw;
        if (n > room) {
            n = room;
            capped = true;
        }
        llhttp_errno_t err = llhttp_execute(&r->parser, start, n);
        size_t used = n;
        if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
            used = (size_t)(llhttp_get_error_pos(&r->parser) - start);
        } else if (err != HPE_OK) {
            const char *pos = llhttp_get_error_pos(&r->parser);
            if (pos != NULL && pos >= start && pos <= start + n) {
                off += (size_t)(pos - start);
            }
            *consumed = off;
            if (r->result == WSB_ENOMEM) {
                return WSB_ENOMEM;
            }
            fail(r, map_llhttp_error(r, err), llhttp_get_error_reason(&r->parser));
            if (r->error == NULL) {
                r->error = "malformed request";
            }
            r->result = WSB_EHTTP;
            return WSB_EHTTP;
        }
        if (in_head) {
            r->head_raw += used;
        } else {
            r->body_raw += used;
        }
        off += used;

        if (r->message_done || err == HPE_PAUSED_UPGRADE) {
            /* Paused in on_message_complete (an upgrade too: that pause comes
             * before llhttp's own HPE_PAUSED_UPGRADE, which is handled the same
             * way should a future llhttp skip the callback). */
            if (err == HPE_PAUSED_UPGRADE) {
                r->upgrade = true;
            }
            *consumed = off;
            r->result = 0;
            return 0;
        }
        if (err == HPE_PAUSED) {
            llhttp_resume(&r->parser); /* paused in on_headers_complete */
            continue;
        }
        if (capped) {
            *consumed = off;
            if (in_head) {
                fail(r, 431, "request head exceeds max_header_bytes");
            } else {
                fail(r, 413,
                     "chunked body and framing exceed max_header_bytes + 2 * max_body_bytes");
            }
            r->result = WSB_EHTTP;
            return WSB_EHTTP;
        }
        if (off == len) {
            *consumed = len;
            return WSB_EAGAIN;
        }
    }
}

const char *wsb_http_request_host_error(const wsb_http_request_t *r)
{
    /* RFC 9112 3.2: 400 to an HTTP/1.1 request without Host and to any
     * request with more than one (which one would the routing believe?). */
    size_t hosts = header_occurrences(r, "Host", NULL);
    if (hosts > 1) {
        return "more than one Host header";
    }
    if (hosts == 0 && r->version == 11) {
        return "missing Host header (required in HTTP/1.1)";
    }
    return NULL;
}

bool wsb_http_request_take_continue(wsb_http_request_t *r)
{
    if (!r->expect_continue || !r->headers_done || r->result != WSB_EAGAIN) {
        return false;
    }
    r->expect_continue = false;
    return true;
}

wsb_str_t wsb_http_request_method(const wsb_http_request_t *r)
{
    return r->method;
}

wsb_str_t wsb_http_request_url(const wsb_http_request_t *r)
{
    return r->url;
}

int wsb_http_request_version(const wsb_http_request_t *r)
{
    return r->version;
}

bool wsb_http_request_keep_alive(const wsb_http_request_t *r)
{
    return r->keep_alive;
}

bool wsb_http_request_is_upgrade(const wsb_http_request_t *r)
{
    return r->upgrade;
}

wsb_str_t wsb_http_request_body(const wsb_http_request_t *r)
{
    if (r->body_len == 0) {
        return (wsb_str_t){"", 0};
    }
    return (wsb_str_t){r->body, r->body_len};
}

size_t wsb_http_request_header_count(const wsb_http_request_t *r)
{
    return r->header_count;
}

const wsb_http_header_t *wsb_http_request_header_at(const wsb_http_request_t *r, size_t i)
{
    return i < r->header_count ? &r->headers[i] : NULL;
}

wsb_str_t wsb_http_request_header(const wsb_http_request_t *r, const char *name)
{
    for (size_t i = 0; i < r->header_count; i++) {
        if (wsb_str_eq_nocase(r->headers[i].name, name)) {
            return r->headers[i].value;
        }
    }
    return WSB_STR_NULL;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

bool wsb_http_request_header_has_token(const wsb_http_request_t *r, const char *name,
                                       const char *token)
{
    for (size_t i = 0; i < r->header_count; i++) {
        if (!wsb_str_eq_nocase(r->headers[i].name, name)) {
            continue;
        }
        const char *p = r->headers[i].value.p;
        const char *end = p + r->headers[i].value.len;
        while (p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *stop = comma != NULL ? comma : end;
            const char *b = p;
            const char *e = stop;
            while (b < e && is_ows(*b)) {
                b++;
            }
            while (e > b && is_ows(e[-1])) {
                e--;
            }
            if (wsb_str_eq_nocase((wsb_str_t){b, (size_t)(e - b)}, token)) {
                return true;
            }
            p = comma != NULL ? comma + 1 : end;
        }
    }
    return false;
}

int wsb_http_request_status(const wsb_http_request_t *r)
{
    return r->status;
}

const char *wsb_http_request_error(const wsb_http_request_t *r)
{
    return r->error != NULL ? r->error : "";
}

const char *wsb_http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

int wsb_http_write_head(char *buf, size_t cap, int status, const char *content_type,
                        size_t content_length, bool keep_alive, const char *extra_headers)
{
    if (status < 100 || status > 999) {
        return WSB_EINVAL;
    }
    int n;
    if (content_type != NULL) {
        n = snprintf(buf, cap,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: %s\r\n%s\r\n",
                     status, wsb_http_status_text(status), content_type, content_length,
                     keep_alive ? "keep-alive" : "close",
                     extra_headers != NULL ? extra_headers : "");
    } else {
        n = snprintf(buf, cap, "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nConnection: %s\r\n%s\r\n",
                     status, wsb_http_status_text(status), content_length,
                     keep_alive ? "keep-alive" : "close",
                     extra_headers != NULL ? extra_headers : "");
    }
    if (n < 0 || (size_t)n >= cap) {
        return WSB_ENOSPC;
    }
    return n;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Decodes one character of a percent-encoded string at *p (< end) into *out
 * and advances *p. Returns 1 for a "%XX" escape, 0 for a literal byte, or
 * WSB_EINVAL for a malformed escape. */
static int next_decoded(const char **p, const char *end, bool plus_is_space, unsigned char *out)
{
    const char *s = *p;
    if (*s != '%') {
        *out = (plus_is_space && *s == '+') ? ' ' : (unsigned char)*s;
        *p = s + 1;
        return 0;
    }
    if (end - s < 3) {
        return WSB_EINVAL;
    }
    int hi = hex_value(s[1]);
    int lo = hex_value(s[2]);
    if (hi < 0 || lo < 0) {
        return WSB_EINVAL;
    }
    *out = (unsigned char)(hi * 16 + lo);
    *p = s + 3;
    return 1;
}

/* Decodes [p, end) into out (NUL-terminated). Rejects an encoded NUL, and an
 * encoded '/' when `path` is set (it would change the segment structure). */
static int decode(const char *p, const char *end, bool path, char *out, size_t cap)
{
    size_t n = 0;
    while (p < end) {
        unsigned char c;
        int rc = next_decoded(&p, end, !path, &c);
        if (rc < 0) {
            return rc;
        }
        if (rc == 1 && (c == '\0' || (path && c == '/'))) {
            return WSB_EINVAL;
        }
        if (n + 1 >= cap) {
            return WSB_ENOSPC;
        }
        out[n++] = (char)c;
    }
    if (cap == 0) {
        return WSB_ENOSPC;
    }
    out[n] = '\0';
    return n > INT_MAX ? WSB_ENOSPC : (int)n;
}

/* Returns where the query or fragment starts in url, or its end. */
static const char *path_end(wsb_str_t url)
{
    const char *end = url.p + url.len;
    for (const char *p = url.p; p < end; p++) {
        if (*p == '?' || *p == '#') {
            return p;
        }
    }
    return end;
}

static bool has_prefix_nocase(const char *p, const char *end, const char *prefix)
{
    size_t n = strlen(prefix);
    return (size_t)(end - p) >= n && wsb_str_eq_nocase((wsb_str_t){p, n}, prefix);
}

int wsb_http_decode_path(wsb_str_t url, char *out, size_t cap)
{
    if (url.p == NULL || url.len == 0) {
        return WSB_EINVAL;
    }
    const char *p = url.p;
    const char *end = path_end(url);
    if (*p != '/') {
        /* Absolute form ("GET http://host/ws"), which servers must accept
         * (RFC 9112 3.2.2): the path starts after the authority. */
        const char *after_scheme = NULL;
        if (has_prefix_nocase(p, end, "http://")) {
            after_scheme = p + 7;
        } else if (has_prefix_nocase(p, end, "https://")) {
            after_scheme = p + 8;
        } else {
            return WSB_EINVAL; /* "*" and authority form have no path */
        }
        p = after_scheme;
        while (p < end && *p != '/') {
            p++;
        }
        if (p == end) {
            if (cap < 2) {
                return WSB_ENOSPC;
            }
            out[0] = '/';
            out[1] = '\0';
            return 1;
        }
    }
    return decode(p, end, true, out, cap);
}

/* True when the percent-decoded [p, end) equals name. */
static bool key_equals(const char *p, const char *end, const char *name)
{
    while (p < end) {
        unsigned char c;
        if (next_decoded(&p, end, true, &c) < 0 || *name == '\0' || (unsigned char)*name != c) {
            return false;
        }
        name++;
    }
    return *name == '\0';
}

int wsb_http_query_param(wsb_str_t url, const char *name, char *out, size_t cap)
{
    if (url.p == NULL) {
        return WSB_EAGAIN;
    }
    const char *end = url.p + url.len;
    const char *q = memchr(url.p, '?', url.len);
    if (q == NULL) {
        return WSB_EAGAIN;
    }
    const char *hash = memchr(q, '#', (size_t)(end - q));
    if (hash != NULL) {
        end = hash;
    }
    const char *p = q + 1;
    while (p <= end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *key_end = eq != NULL ? eq : stop;
        if (key_end > p && key_equals(p, key_end, name)) {
            const char *value = eq != NULL ? eq + 1 : stop;
            return decode(value, stop, false, out, cap);
        }
        if (amp == NULL) {
            break;
        }
        p = amp + 1;
    }
    return WSB_EAGAIN;
}
