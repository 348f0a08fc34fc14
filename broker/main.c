/* main.c - wsbroker: configuration, process setup, the workers, and exit status.
 *
 * Exit status: 0 after a clean shutdown (SIGINT/SIGTERM), 2 for a bad
 * configuration (the message on stderr names the key), 1 for a runtime
 * failure such as a port that cannot be bound.
 */
#include "app/broker.h"
#include "app/config.h"
#include "shared/log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

extern char **environ;

/* Each connection is a file descriptor: the default soft limit (often 1024)
 * would cap the broker long before memory does. */
static void raise_nofile_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    rlim_t before = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            log_warn("cannot raise open file limit", "soft=%llu hard=%llu",
                     (unsigned long long)before, (unsigned long long)rl.rlim_max);
            return;
        }
    }
    log_info("open file limit", "soft=%llu previous=%llu", (unsigned long long)rl.rlim_cur,
             (unsigned long long)before);
}

int main(int argc, char **argv)
{
    config_t cfg;
    char err[512];
    config_result_t cr = config_load(&cfg, argc, argv, environ, err, sizeof(err));
    if (cr == CONFIG_EXIT) {
        config_free(&cfg);
        return 0;
    }
    if (cr == CONFIG_ERROR) {
        (void)fprintf(stderr, "wsbroker: configuration error: %s\n", err);
        (void)fprintf(stderr, "run 'wsbroker --help' for the list of settings\n");
        config_free(&cfg);
        return 2;
    }
    if (cfg.check_only) {
        for (size_t i = 0; i < cfg.nwarnings; i++) {
            (void)fprintf(stderr, "wsbroker: warning: %s\n", cfg.warnings[i]);
        }
        int rc = config_check(&cfg, stdout, err, sizeof(err));
        if (rc != 0) {
            (void)fprintf(stderr, "wsbroker: configuration error: %s\n", err);
        }
        config_free(&cfg);
        return rc == 0 ? 0 : 2;
    }
    log_level_t level = LOG_INFO;
    (void)log_parse_level(cfg.log_level, &level);
    log_set_level(level);
    (void)signal(SIGPIPE, SIG_IGN);
    raise_nofile_limit();
    log_info("starting", "version=%s config=%s", WSB_VERSION,
             log_quote(cfg.config_file ? cfg.config_file : "-"));
    for (size_t i = 0; i < cfg.nwarnings; i++) {
        log_warn(cfg.warnings[i], NULL);
    }

    static broker_t broker; /* holds the workers; lives until exit */
    int status = 0;
    if (broker_init(&broker, &cfg) == 0) {
        broker_run(&broker);
        log_info("stopped", NULL);
    } else {
        status = 1;
    }
    broker_free(&broker);
    config_free(&cfg);
    return status;
}
