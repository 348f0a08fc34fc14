/* units.c - sizes, durations and booleans as operators write them (see units.h). */
#include "shared/units.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#define KIB       1024ULL
#define MIB       (1024ULL * KIB)
#define GIB       (1024ULL * MIB)
#define SECOND_MS 1000ULL
#define MINUTE_MS (60ULL * SECOND_MS)
#define HOUR_MS   (60ULL * MINUTE_MS)

/* Decimal fractions are kept exact as whole + frac / scale, with at most this
 * many significant fraction digits so that frac * unit cannot overflow. */
#define FRAC_DIGITS_MAX 9

typedef struct {
    uint64_t whole, frac, scale;
} decimal_t;

/* Parses "<digits>[.<digits>]" at *s and advances *s past it. */
static int parse_decimal(const char **s, decimal_t *d)
{
    const char *p = *s;
    d->whole = 0;
    d->frac = 0;
    d->scale = 1;
    if (*p < '0' || *p > '9') {
        return -1;
    }
    for (; *p >= '0' && *p <= '9'; p++) {
        uint64_t digit = (uint64_t)(*p - '0');
        if (d->whole > (UINT64_MAX - digit) / 10) {
            return -1;
        }
        d->whole = d->whole * 10 + digit;
    }
    if (*p == '.') {
        p++;
        const char *digits = p;
        while (*p >= '0' && *p <= '9') {
            p++;
        }
        const char *end = p;
        if (end == digits) {
            return -1;
        }
        /* Trailing zeros change nothing; dropping them keeps "1.500000000000" exact. */
        while (end > digits && end[-1] == '0') {
            end--;
        }
        if (end - digits > FRAC_DIGITS_MAX) {
            return -1;
        }
        for (const char *q = digits; q < end; q++) {
            d->frac = d->frac * 10 + (uint64_t)(*q - '0');
            d->scale *= 10;
        }
    }
    *s = p;
    return 0;
}

/* whole * unit + frac * unit / scale, which must be a whole number. `unit` is
 * at most 2^32 so frac * unit (< 10^9 * 2^32) fits in 64 bits. */
static int decimal_scale(const decimal_t *d, uint64_t unit, uint64_t *out)
{
    if (unit != 0 && d->whole > UINT64_MAX / unit) {
        return -1;
    }
    uint64_t whole = d->whole * unit;
    uint64_t part = d->frac * unit;
    if (part % d->scale != 0) {
        return -1;
    }
    part /= d->scale;
    if (whole > UINT64_MAX - part) {
        return -1;
    }
    *out = whole + part;
    return 0;
}

static const char *skip_spaces(const char *s)
{
    while (*s == ' ') {
        s++;
    }
    return s;
}

int units_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *name;
        uint64_t bytes;
    } units[] = {
        {"", 1},      {"b", 1},        {"k", KIB}, {"kib", KIB}, {"kb", 1000},       {"m", MIB},
        {"mib", MIB}, {"mb", 1000000}, {"g", GIB}, {"gib", GIB}, {"gb", 1000000000},
    };
    decimal_t d;
    if (s == NULL || parse_decimal(&s, &d) != 0) {
        return -1;
    }
    const char *unit = skip_spaces(s);
    if (unit != s && *unit == '\0') {
        return -1; /* trailing spaces without a unit */
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(unit, units[i].name) == 0) {
            return decimal_scale(&d, units[i].bytes, out);
        }
    }
    return -1;
}

int units_parse_duration(const char *s, uint64_t *out_ms)
{
    static const struct {
        const char *name;
        uint64_t ms;
    } units[] = {
        {"", SECOND_MS}, {"ms", 1}, {"s", SECOND_MS}, {"m", MINUTE_MS}, {"h", HOUR_MS},
    };
    decimal_t d;
    if (s == NULL || parse_decimal(&s, &d) != 0) {
        return -1;
    }
    const char *unit = skip_spaces(s);
    if (unit != s && *unit == '\0') {
        return -1;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(unit, units[i].name) == 0) {
            return decimal_scale(&d, units[i].ms, out_ms);
        }
    }
    return -1;
}

int units_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    if (s == NULL) {
        return -1;
    }
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

int units_parse_uint(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0') {
        return -1;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return -1;
        }
        uint64_t digit = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - digit) / 10) {
            return -1;
        }
        v = v * 10 + digit;
    }
    *out = v;
    return 0;
}
