/* admin_ban.c - users banned by the admin API (see admin_ban.h). */
#include "core/admin_ban.h"

#include "shared/util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BAN_USER_MAX 128 /* WSB_JWT_MAX_SUB */

typedef struct {
    uint64_t until_ms;
    uint8_t len;
    char user[BAN_USER_MAX];
} ban_entry_t;

struct admin_ban_s {
    pthread_mutex_t lock;
    size_t max;
    size_t n; /* entries in use, live or expired */
    ban_entry_t *entries;
};

admin_ban_t *admin_ban_new(size_t max)
{
    admin_ban_t *b = xcalloc(1, sizeof *b);
    pthread_mutex_init(&b->lock, NULL);
    b->max = max;
    return b;
}

void admin_ban_free(admin_ban_t *b)
{
    if (b == NULL) {
        return;
    }
    pthread_mutex_destroy(&b->lock);
    free(b->entries);
    free(b);
}

static ban_entry_t *find(admin_ban_t *b, wsb_str_t user)
{
    for (size_t i = 0; i < b->n; i++) {
        ban_entry_t *e = &b->entries[i];
        if (e->len == user.len && memcmp(e->user, user.p, user.len) == 0) {
            return e;
        }
    }
    return NULL;
}

bool admin_ban_add(admin_ban_t *b, wsb_str_t user, uint64_t until_ms, uint64_t now_ms)
{
    if (user.len == 0 || user.len > BAN_USER_MAX) {
        return false;
    }
    pthread_mutex_lock(&b->lock);
    ban_entry_t *e = find(b, user);
    for (size_t i = 0; e == NULL && i < b->n; i++) {
        if (b->entries[i].until_ms <= now_ms) {
            e = &b->entries[i]; /* expired: reused */
        }
    }
    if (e == NULL && b->n < b->max) {
        if (b->entries == NULL) {
            b->entries = xcalloc(b->max, sizeof *b->entries);
        }
        e = &b->entries[b->n++];
    }
    if (e != NULL) {
        e->len = (uint8_t)user.len;
        memcpy(e->user, user.p, user.len);
        e->until_ms = until_ms;
    }
    pthread_mutex_unlock(&b->lock);
    return e != NULL;
}

uint64_t admin_ban_left_ms(admin_ban_t *b, wsb_str_t user, uint64_t now_ms)
{
    if (b == NULL || user.len == 0 || user.len > BAN_USER_MAX) {
        return 0;
    }
    pthread_mutex_lock(&b->lock);
    const ban_entry_t *e = b->n > 0 ? find(b, user) : NULL;
    uint64_t left = e != NULL && e->until_ms > now_ms ? e->until_ms - now_ms : 0;
    pthread_mutex_unlock(&b->lock);
    return left;
}

size_t admin_ban_count(admin_ban_t *b, uint64_t now_ms)
{
    pthread_mutex_lock(&b->lock);
    size_t live = 0;
    for (size_t i = 0; i < b->n; i++) {
        live += b->entries[i].until_ms > now_ms;
    }
    pthread_mutex_unlock(&b->lock);
    return live;
}
