/* help2man.c - writes a man page from a program's --help, so that the manual
 * and --help are one text: the build runs it on wsbroker and wsbroker-cli.
 *
 *   help2man PROGRAM NAME SECTION VERSION "one-line description" OUT
 *
 * A line with no indent that is a short title ("EXIT STATUS", "Options:")
 * becomes a section (.SH); every other line is kept as it is (no filling),
 * escaped for roff. When --help has no NAME section, NAME is made from the
 * description and SYNOPSIS from a first "Usage: ..." line. Exit 0, or 1 with
 * a message when PROGRAM fails or OUT cannot be written. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_heading(const char *line)
{
    size_t len = strlen(line);
    if (len == 0 || len > 30 || !isupper((unsigned char)line[0])) {
        return false;
    }
    bool all_caps = true;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (i + 1 == len && c == ':') {
            return true;
        }
        if (!isalpha(c) && c != ' ') {
            return false;
        }
        all_caps = all_caps && (isupper(c) || c == ' ');
    }
    return all_caps;
}

static void put_escaped(FILE *out, const char *text)
{
    if (text[0] == '.' || text[0] == '\'') {
        (void)fputs("\\&", out);
    }
    for (const char *p = text; *p; p++) {
        if (*p == '\\') {
            (void)fputs("\\e", out);
        } else if (*p == '-') {
            (void)fputs("\\-", out);
        } else {
            (void)fputc(*p, out);
        }
    }
}

static void put_heading(FILE *out, const char *line)
{
    (void)fputs(".fi\n.SH \"", out);
    for (const char *p = line; *p && *p != ':'; p++) {
        (void)fputc(toupper((unsigned char)*p), out);
    }
    (void)fputs("\"\n.nf\n", out);
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        (void)fprintf(stderr, "usage: help2man PROGRAM NAME SECTION VERSION DESCRIPTION OUT\n");
        return 1;
    }
    const char *name = argv[2];
    char cmd[4096];
    (void)snprintf(cmd, sizeof cmd, "'%s' --help", argv[1]);
    FILE *in = popen(cmd, "r");
    FILE *out = fopen(argv[6], "w");
    if (in == NULL || out == NULL) {
        (void)fprintf(stderr, "help2man: cannot run %s or write %s\n", argv[1], argv[6]);
        return 1;
    }
    (void)fprintf(out, ".\\\" Generated from `%s --help` by tools/help2man.c: do not edit.\n",
                  name);
    (void)fprintf(out, ".TH \"%s\" \"%s\" \"\" \"wsbroker %s\" \"User Commands\"\n", name, argv[3],
                  argv[4]);
    (void)fputs(".nh\n.ad l\n.nf\n", out);
    char line[8192];
    bool first = true;
    bool in_name = false;
    while (fgets(line, sizeof line, in) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        if (first && strcmp(line, "NAME") != 0) {
            (void)fprintf(out, ".fi\n.SH NAME\n%s \\- %s\n", name, argv[5]);
            if (strncmp(line, "Usage: ", 7) == 0) {
                (void)fputs(".SH SYNOPSIS\n.nf\n", out);
                put_escaped(out, line + 7);
                (void)fputs("\n.fi\n", out);
                line[0] = '\0';
            }
            (void)fputs(".SH DESCRIPTION\n.nf\n", out);
        }
        first = false;
        if (strcmp(line, "NAME") == 0) {
            /* "name - description" filled, as man-db's whatis parser wants. */
            (void)fputs(".fi\n.SH NAME\n", out);
            in_name = true;
            continue;
        }
        if (in_name) {
            if (line[0] == '\0') {
                continue;
            }
            put_escaped(out, line + strspn(line, " "));
            (void)fputs("\n.nf\n", out);
            in_name = false;
            continue;
        }
        if (is_heading(line)) {
            put_heading(out, line);
            continue;
        }
        put_escaped(out, line);
        (void)fputc('\n', out);
    }
    (void)fputs(".fi\n", out);
    int st = pclose(in);
    if (fclose(out) != 0 || st != 0 || first) {
        (void)fprintf(stderr, "help2man: %s --help failed\n", argv[1]);
        (void)remove(argv[6]);
        return 1;
    }
    return 0;
}
