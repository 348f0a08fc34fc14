/*
 * units.h - the value parsers behind the configuration table, shared by every
 * module that reads settings of its own (history rules, ...). Pure: no
 * allocation, no global state. Syntax only, no range: each returns 0 and
 * stores the value, or -1 (leaving *out alone) on bad syntax or uint64
 * overflow.
 *   size:     "65536", "64KiB", "1.5 MiB", "1MB" (10^6), "1K" (= KiB); units
 *             B KiB MiB GiB KB MB GB K M G, any case; the result must be whole bytes
 *   duration: "10" or "0.5" (seconds), "500ms", "10s", "5m", "1h"; stored in
 *             milliseconds; the result must be whole milliseconds
 *   uint:     decimal digits only (no sign, no space, no unit)
 *   bool:     true/false, 1/0, yes/no, on/off, any case
 */
#ifndef WSB_BROKER_UNITS_H
#define WSB_BROKER_UNITS_H

#include <stdbool.h>
#include <stdint.h>

int units_parse_uint(const char *s, uint64_t *out);
int units_parse_size(const char *s, uint64_t *out);
int units_parse_duration(const char *s, uint64_t *out_ms);
int units_parse_bool(const char *s, bool *out);

#endif
