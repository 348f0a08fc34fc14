/* bridge_config.h - what the Redis bridge (bridge_redis.h) needs of the
 * configuration; app/ fills it from config_t. */
#ifndef WSB_BROKER_BRIDGE_CONFIG_H
#define WSB_BROKER_BRIDGE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the bridge needs of the configuration. The strings are borrowed:
 * they must outlive the bridge. */
typedef struct bridge_config_s {
    const char *host; /* Redis (with cluster: the first seed, for logs) */
    unsigned port;
    const char *user;     /* NULL: none */
    const char *password; /* NULL: no AUTH */
    const char *prefix;   /* of every channel and key (redis.prefix) */
    const char *node_id;  /* this node, in every envelope */
    bool sharded;         /* redis.sharded */
    bool sharded_patterns;
    bool clustered_history; /* history rules exist: they live in Redis */
    size_t queue_size;      /* redis.queue_size */
    size_t max_data;        /* the largest data JSON a local publish carries */
    uint64_t reconnect_max_ms;
    uint64_t presence_node_ttl_ms; /* presence.node_ttl (presence_bus.h) */
    /* Sentinel (redis_sentinel.h): when `sentinels` is set, host and port
     * are unused and the master comes from the sentinels. */
    const char *sentinels;         /* redis.sentinels, comma-separated; NULL: none */
    const char *master_name;       /* redis.master_name */
    const char *sentinel_password; /* redis.sentinel_password; NULL: no AUTH */
    const char *cluster;           /* redis.cluster seeds "host:port,...": NULL = one server */
} bridge_config_t;

#endif
