/* cli_token.c - `wsbroker-cli token` and `wsbroker-cli verify`: mint a test
 * JWT with the claims the broker reads (sub, subscribe, publish, exp, iat,
 * admin), signed HS256 with a shared secret or RS256/ES256 with a PEM private
 * key, and check one with the broker's own verifier (wsb/jwt.h), so that what
 * verify accepts is what the broker accepts. No connection, no event loop. */
#include "cli.h"
#include "wsb/jwt.h"
#include "wsb/topic.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_FILE_MAX     ((size_t)1024 * 1024)
#define DEFAULT_TTL_S    3600
#define MAX_TTL_S        (INT64_C(10) * 365 * 24 * 3600)
#define ES256_HALF_BYTES 32

typedef struct {
    const char *secret;      /* HS256 */
    const char *secret_file; /* HS256, the secret read from a file */
    const char *key_file;    /* PEM: private (token) or public/certificate (verify) */
    const char *sub;
    const char *subscribe[WSB_JWT_MAX_PATTERNS];
    size_t nsubscribe;
    const char *publish[WSB_JWT_MAX_PATTERNS];
    size_t npublish;
    int64_t ttl_s; /* 0 = no exp */
    bool admin;
    double leeway_s; /* verify */
} token_args_t;

static int token_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int token_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)fprintf(stderr, PROG ": ");
    (void)vfprintf(stderr, fmt, ap);
    va_end(ap);
    (void)fprintf(stderr, "\n(see '" PROG " --help')\n");
    return EXIT_USAGE;
}

/* Reads a whole file (at most KEY_FILE_MAX bytes) into a NUL-terminated
 * buffer; NULL with a message on failure. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        cli_say("cannot read '%s': %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(KEY_FILE_MAX + 1);
    if (buf == NULL) {
        (void)fclose(f);
        cli_say("out of memory");
        return NULL;
    }
    size_t n = fread(buf, 1, KEY_FILE_MAX + 1, f);
    bool bad = ferror(f) != 0;
    (void)fclose(f);
    if (bad || n > KEY_FILE_MAX) {
        cli_say("cannot read '%s': %s", path, bad ? "read error" : "larger than 1 MiB");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* The HS256 secret of --secret or --secret-file (trailing newlines stripped,
 * as the broker's auth.jwt_secret_file does). Caller frees; NULL on error. */
static char *load_secret(const token_args_t *a, size_t *len)
{
    if (a->secret != NULL) {
        *len = strlen(a->secret);
        return strdup(a->secret);
    }
    char *s = read_file(a->secret_file, len);
    while (s != NULL && *len > 0 && (s[*len - 1] == '\n' || s[*len - 1] == '\r')) {
        s[--*len] = '\0';
    }
    return s;
}

/* "90", "90s", "30m", "1h", "7d" -> seconds; -1 when malformed. */
static int64_t parse_ttl(const char *s)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || v < 0 || s[0] == '-' || s[0] == '+') {
        return -1;
    }
    int64_t unit = 1;
    if (strcmp(end, "m") == 0) {
        unit = 60;
    } else if (strcmp(end, "h") == 0) {
        unit = 3600;
    } else if (strcmp(end, "d") == 0) {
        unit = 86400;
    } else if (strcmp(end, "s") != 0 && end[0] != '\0') {
        return -1;
    }
    if (v > MAX_TTL_S / unit) {
        return -1;
    }
    return (int64_t)v * unit;
}

static char *b64url(const unsigned char *in, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(len / 3 * 4 + 5);
    if (out == NULL) {
        return NULL;
    }
    size_t o = 0, i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
        out[o++] = alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        if (i + 1 < len) {
            out[o++] = alphabet[v >> 6 & 63];
        }
    }
    out[o] = '\0';
    return out;
}

static char *b64url_json(json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text == NULL) {
        return NULL;
    }
    char *enc = b64url((const unsigned char *)text, strlen(text));
    free(text);
    return enc;
}

/* An ECDSA signature in DER (what OpenSSL makes) -> JWS's r || s. */
static int der_to_raw_es256(const unsigned char *der, size_t len, unsigned char *raw)
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    if (sig == NULL) {
        return -1;
    }
    const BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG_get0(sig, &r, &s);
    int ok = BN_bn2binpad(r, raw, ES256_HALF_BYTES) == ES256_HALF_BYTES &&
             BN_bn2binpad(s, raw + ES256_HALF_BYTES, ES256_HALF_BYTES) == ES256_HALF_BYTES;
    ECDSA_SIG_free(sig);
    return ok ? 0 : -1;
}

/* Loads the private key of --key; sets *alg from its type. NULL on error. */
static EVP_PKEY *load_private_key(const char *path, const char **alg)
{
    size_t len = 0;
    char *pem = read_file(path, &len);
    if (pem == NULL) {
        return NULL;
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *key = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    OPENSSL_cleanse(pem, len);
    free(pem);
    if (key == NULL) {
        cli_say("'%s' holds no PEM private key (unencrypted PKCS#8, RSA or EC)", path);
        return NULL;
    }
    if (EVP_PKEY_base_id(key) == EVP_PKEY_RSA && EVP_PKEY_bits(key) >= 2048) {
        *alg = "RS256";
    } else if (EVP_PKEY_base_id(key) == EVP_PKEY_EC && EVP_PKEY_bits(key) == 256) {
        *alg = "ES256";
    } else {
        cli_say("'%s': expected an RSA key of at least 2048 bits (RS256) or an EC P-256 key "
                "(ES256)",
                path);
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

/* Signs `input` with `key` (SHA-256); for ES256 the signature becomes r || s.
 * Returns the base64url signature or NULL. */
static char *sign_pkey(EVP_PKEY *key, const char *alg, const char *input)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *sig = NULL;
    size_t siglen = 0;
    char *out = NULL;
    if (ctx == NULL || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(ctx, NULL, &siglen, (const unsigned char *)input, strlen(input)) != 1) {
        goto done;
    }
    sig = malloc(siglen);
    if (sig == NULL ||
        EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)input, strlen(input)) != 1) {
        goto done;
    }
    if (strcmp(alg, "ES256") == 0) {
        unsigned char raw[2 * ES256_HALF_BYTES];
        if (der_to_raw_es256(sig, siglen, raw) == 0) {
            out = b64url(raw, sizeof raw);
        }
    } else {
        out = b64url(sig, siglen);
    }
done:
    free(sig);
    EVP_MD_CTX_free(ctx);
    return out;
}

static json_t *claims_json(const token_args_t *a, int64_t now)
{
    json_t *c = json_object();
    json_t *sub = json_array(), *pub = json_array();
    if (c == NULL || sub == NULL || pub == NULL) {
        json_decref(c);
        json_decref(sub);
        json_decref(pub);
        return NULL;
    }
    if (a->sub != NULL) {
        (void)json_object_set_new(c, "sub", json_string(a->sub));
    }
    (void)json_object_set_new(c, "iat", json_integer(now));
    if (a->ttl_s > 0) {
        (void)json_object_set_new(c, "exp", json_integer(now + a->ttl_s));
    }
    for (size_t i = 0; i < a->nsubscribe; i++) {
        (void)json_array_append_new(sub, json_string(a->subscribe[i]));
    }
    for (size_t i = 0; i < a->npublish; i++) {
        (void)json_array_append_new(pub, json_string(a->publish[i]));
    }
    (void)json_object_set_new(c, "subscribe", sub);
    (void)json_object_set_new(c, "publish", pub);
    if (a->admin) {
        (void)json_object_set_new(c, "admin", json_true());
    }
    return c;
}

static int mint(const token_args_t *a)
{
    const char *alg = "HS256";
    EVP_PKEY *key = NULL;
    if (a->key_file != NULL) {
        key = load_private_key(a->key_file, &alg);
        if (key == NULL) {
            return EXIT_USAGE;
        }
    }
    int st = EXIT_FAIL;
    char *secret = NULL, *h = NULL, *p = NULL, *input = NULL, *sig = NULL;
    size_t secret_len = 0;
    json_t *header = json_pack("{s:s, s:s}", "alg", alg, "typ", "JWT");
    json_t *claims = claims_json(a, (int64_t)time(NULL));
    h = header != NULL ? b64url_json(header) : NULL;
    p = claims != NULL ? b64url_json(claims) : NULL;
    if (h == NULL || p == NULL) {
        cli_say("out of memory");
        goto done;
    }
    size_t input_len = strlen(h) + 1 + strlen(p);
    input = malloc(input_len + 1);
    if (input == NULL) {
        goto done;
    }
    (void)snprintf(input, input_len + 1, "%s.%s", h, p);
    if (key != NULL) {
        sig = sign_pkey(key, alg, input);
    } else {
        secret = load_secret(a, &secret_len);
        if (secret == NULL) {
            st = EXIT_USAGE;
            goto done;
        }
        if (secret_len == 0) {
            cli_say("the secret is empty");
            st = EXIT_USAGE;
            goto done;
        }
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned maclen = 0;
        if (HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)input, input_len,
                 mac, &maclen) != NULL) {
            sig = b64url(mac, maclen);
        }
    }
    if (sig == NULL) {
        cli_say("signing failed");
        goto done;
    }
    (void)printf("%s.%s\n", input, sig);
    st = (fflush(stdout) == 0) ? EXIT_OK : EXIT_FAIL;
done:
    if (secret != NULL) {
        OPENSSL_cleanse(secret, secret_len);
        free(secret);
    }
    free(h);
    free(p);
    free(input);
    free(sig);
    json_decref(header);
    json_decref(claims);
    EVP_PKEY_free(key);
    return st;
}

/* The public key PEM for verify: --key may also name a private key, whose
 * public half is then used. Caller frees; NULL on error. */
static char *public_pem(const char *path, size_t *len)
{
    char *pem = read_file(path, len);
    if (pem == NULL || strstr(pem, "PRIVATE KEY-----") == NULL) {
        return pem;
    }
    BIO *in = BIO_new_mem_buf(pem, (int)*len);
    EVP_PKEY *key = in != NULL ? PEM_read_bio_PrivateKey(in, NULL, NULL, NULL) : NULL;
    BIO_free(in);
    OPENSSL_cleanse(pem, *len);
    free(pem);
    BIO *out = BIO_new(BIO_s_mem());
    char *pub = NULL;
    if (key != NULL && out != NULL && PEM_write_bio_PUBKEY(out, key) == 1) {
        char *data = NULL;
        long n = BIO_get_mem_data(out, &data);
        pub = n > 0 ? malloc((size_t)n + 1) : NULL;
        if (pub != NULL) {
            memcpy(pub, data, (size_t)n);
            pub[n] = '\0';
            *len = (size_t)n;
        }
    }
    BIO_free(out);
    EVP_PKEY_free(key);
    if (pub == NULL) {
        cli_say("'%s' holds no usable PEM key", path);
    }
    return pub;
}

static void print_claims(const char *token, int64_t now)
{
    const char *dot1 = strchr(token, '.');
    const char *dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
    if (dot2 == NULL) {
        return;
    }
    size_t n = (size_t)(dot2 - dot1 - 1);
    uint8_t *raw = malloc(n + 1);
    long got = raw != NULL ? wsb_base64url_decode(dot1 + 1, n, raw, n + 1) : -1;
    json_t *claims = got >= 0 ? json_loadb((const char *)raw, (size_t)got, 0, NULL) : NULL;
    free(raw);
    if (claims == NULL) {
        return;
    }
    char *text = json_dumps(claims, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text != NULL) {
        (void)printf("%s\n", text);
        free(text);
    }
    json_t *exp = json_object_get(claims, "exp");
    if (json_is_number(exp)) {
        (void)printf("valid: expires in %llds\n",
                     (long long)(json_number_value(exp) - (double)now));
    } else {
        (void)printf("valid: no expiry\n");
    }
    json_decref(claims);
}

static int verify(const token_args_t *a, const char *token)
{
    wsb_jwt_keys_t *keys = wsb_jwt_keys_new();
    if (keys == NULL) {
        cli_say("out of memory");
        return EXIT_FAIL;
    }
    int st = EXIT_USAGE;
    size_t len = 0;
    const char *why = NULL;
    if (a->key_file != NULL) {
        char *pem = public_pem(a->key_file, &len);
        if (pem == NULL) {
            goto done;
        }
        int rc = wsb_jwt_keys_set_public_pem(keys, pem, len, &why);
        free(pem);
        if (rc != 0) {
            cli_say("'%s': %s", a->key_file, why);
            goto done;
        }
    } else {
        char *secret = load_secret(a, &len);
        if (secret == NULL) {
            goto done;
        }
        int rc = wsb_jwt_keys_set_secret(keys, secret, len);
        OPENSSL_cleanse(secret, len);
        free(secret);
        if (rc != 0) {
            cli_say("the secret is empty");
            goto done;
        }
    }
    int64_t now = (int64_t)time(NULL);
    wsb_jwt_claims_t claims;
    int rc = wsb_jwt_verify(keys, token, strlen(token), now, (int64_t)a->leeway_s, &claims, &why);
    if (rc != 0) {
        cli_say("invalid token: %s", why);
        st = EXIT_FAIL;
        goto done;
    }
    wsb_jwt_claims_free(&claims);
    print_claims(token, now);
    st = EXIT_OK;
done:
    wsb_jwt_keys_free(keys);
    return st;
}

static int add_pattern(const char **list, size_t *n, const char *p)
{
    const char *why = NULL;
    if (wsb_topic_check(p, strlen(p), WSB_TOPIC_PATTERN, &why) != 0) {
        cli_say("invalid pattern '%s': %s", p, why);
        return EXIT_USAGE;
    }
    if (*n >= WSB_JWT_MAX_PATTERNS) {
        return token_usage("at most %d patterns per claim", WSB_JWT_MAX_PATTERNS);
    }
    list[(*n)++] = p;
    return -1;
}

int cli_token_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"secret", required_argument, NULL, 's'},    {"secret-file", required_argument, NULL, 'f'},
        {"key", required_argument, NULL, 'k'},       {"sub", required_argument, NULL, 'u'},
        {"subscribe", required_argument, NULL, 'S'}, {"publish", required_argument, NULL, 'P'},
        {"ttl", required_argument, NULL, 'T'},       {"admin", no_argument, NULL, 'a'},
        {"leeway", required_argument, NULL, 'l'},    {NULL, 0, NULL, 0},
    };
    bool minting = strcmp(argv[0], "token") == 0;
    token_args_t a = {.ttl_s = DEFAULT_TTL_S};
    int c, st;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            a.secret = optarg;
            break;
        case 'f':
            a.secret_file = optarg;
            break;
        case 'k':
            a.key_file = optarg;
            break;
        case 'u':
            if (optarg[0] == '\0' || strlen(optarg) > WSB_JWT_MAX_SUB) {
                return token_usage("--sub: expected 1 to 128 bytes, got '%s'", optarg);
            }
            a.sub = optarg;
            break;
        case 'S':
            if ((st = add_pattern(a.subscribe, &a.nsubscribe, optarg)) >= 0) {
                return st;
            }
            break;
        case 'P':
            if ((st = add_pattern(a.publish, &a.npublish, optarg)) >= 0) {
                return st;
            }
            break;
        case 'T':
            a.ttl_s = parse_ttl(optarg);
            if (a.ttl_s < 0) {
                return token_usage("--ttl: expected seconds or a number with s, m, h or d "
                                   "(0 = no exp), at most 10 years, got '%s'",
                                   optarg);
            }
            break;
        case 'a':
            a.admin = true;
            break;
        case 'l': {
            char *end = NULL;
            a.leeway_s = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || !(a.leeway_s >= 0 && a.leeway_s <= 86400)) {
                return token_usage("--leeway: expected seconds from 0 to 86400, got '%s'", optarg);
            }
            break;
        }
        case ':':
            return token_usage("option '%s' needs a value", argv[optind - 1]);
        default:
            return token_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    int nkeys = (a.secret != NULL) + (a.secret_file != NULL) + (a.key_file != NULL);
    if (nkeys != 1) {
        return token_usage("%s: expected exactly one of --secret, --secret-file or --key", argv[0]);
    }
    if (minting) {
        if (optind != argc) {
            return token_usage("token: unexpected argument '%s'", argv[optind]);
        }
        return mint(&a);
    }
    if (optind + 1 != argc) {
        return token_usage("verify: expected one TOKEN");
    }
    return verify(&a, argv[optind]);
}
