/*
 * sigv4.c - the keys file (--sqs-keys) and AWS Signature Version 4.
 * With a keys file, every request must be signed with one of its keys, and
 * is served as that key's user (instead of the connection's local user).
 *
 * The file: one key a line, "ACCESS_KEY SECRET USER" (USER a name or a
 * uid), '#' comments; it must not be readable by group or others.
 *
 * The check rebuilds the canonical request from what arrived (method, path,
 * query, the signed headers, the SHA-256 of the body), signs it with the
 * key derived from the secret, the date, the region and "sqs", and compares
 * in constant time; X-Amz-Date must be within 15 minutes of now.
 */
#include <errno.h>
#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <nettle/sha2.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "sqs_i.h"

#define SKEW_S (15 * 60)

struct key {
	char access[129];
	char secret[129];
	uid_t uid;
};

static struct key *keys;
static size_t nkeys;

static int parse_user(const char *s, uid_t *uid)
{
	struct passwd pw, *res = NULL;
	char buf[4096], *end;
	unsigned long n = strtoul(s, &end, 10);

	if (*s && !*end) {
		*uid = (uid_t)n;
		return 0;
	}
	if (getpwnam_r(s, &pw, buf, sizeof buf, &res) != 0 || !res)
		return -1;
	*uid = pw.pw_uid;
	return 0;
}

int sqs_keys_load(const char *file, char *err, size_t errlen)
{
	FILE *f = fopen(file, "r");
	char line[512];
	struct stat st;
	int n = 0;

	if (!f || fstat(fileno(f), &st) < 0) {
		snprintf(err, errlen, "--sqs-keys %s: %s", file, strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "--sqs-keys %s: readable by others "
			 "(chmod 600 it)", file);
		fclose(f);
		return -1;
	}
	while (fgets(line, sizeof line, f)) {
		char a[129], s[129], u[129], extra[2];
		struct key *k;
		int got;

		n++;
		line[strcspn(line, "#")] = '\0';
		got = sscanf(line, "%128s %128s %128s %1s", a, s, u, extra);
		if (got <= 0)
			continue;
		k = realloc(keys, (nkeys + 1) * sizeof(*keys));
		if (!k)
			break;
		keys = k;
		k = &keys[nkeys];
		if (got != 3 || parse_user(u, &k->uid) < 0) {
			snprintf(err, errlen, "--sqs-keys %s: line %d: not "
				 "\"ACCESS_KEY SECRET USER\" with a known user",
				 file, n);
			fclose(f);
			sqs_keys_free();
			return -1;
		}
		snprintf(k->access, sizeof k->access, "%s", a);
		snprintf(k->secret, sizeof k->secret, "%s", s);
		nkeys++;
	}
	fclose(f);
	if (nkeys == 0) {
		snprintf(err, errlen, "--sqs-keys %s: no keys in it", file);
		return -1;
	}
	return 0;
}

void sqs_keys_free(void)
{
	free(keys);
	keys = NULL;
	nkeys = 0;
}

int sqs_keys_on(void)
{
	return nkeys > 0;
}

/* ------------------------------------------------------------ signing */

/* RFC 3986 encoding as SigV4 wants it; '/' kept when slash. */
static void add_uri(struct sqs_buf *b, const char *s, size_t n, int slash)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char e[4];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '.' || c == '~' || (slash && c == '/')) {
			sqs_buf_put(b, (const char *)&c, 1);
		} else {
			snprintf(e, sizeof e, "%%%02X", c);
			sqs_buf_put(b, e, 3);
		}
	}
}

static void hex(const uint8_t *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
	struct sha256_ctx c;
	uint8_t d[SHA256_DIGEST_SIZE];

	sha256_init(&c);
	sha256_update(&c, len, data);
	sha256_digest(&c, sizeof d, d);
	hex(d, sizeof d, out);
}

static void hmac(const uint8_t *key, size_t klen, const char *msg,
		 uint8_t out[SHA256_DIGEST_SIZE])
{
	struct hmac_sha256_ctx c;

	hmac_sha256_set_key(&c, klen, key);
	hmac_sha256_update(&c, strlen(msg), (const uint8_t *)msg);
	hmac_sha256_digest(&c, SHA256_DIGEST_SIZE, out);
}

/* One "k=v" of a raw query, decoded then re-encoded. */
struct qpart {
	char *enc;
};

static int by_str(const void *a, const void *b)
{
	const char *x = ((const struct qpart *)a)->enc;
	const char *y = ((const struct qpart *)b)->enc;

	return strcmp(x ? x : "", y ? y : "");
}

/* The canonical query string of raw (NULL: none). */
static void add_query(struct sqs_buf *b, const char *raw)
{
	struct sqs_params p = { 0 };
	struct qpart *v;

	if (!raw || !*raw || sqs_form_decode(&p, raw, strlen(raw)))
		return;
	v = calloc(p.n, sizeof(*v));
	if (!v)
		b->oom = 1;
	for (size_t i = 0; v && i < p.n; i++) {
		struct sqs_buf e = { 0 };

		add_uri(&e, p.v[i].key, strlen(p.v[i].key), 0);
		sqs_buf_puts(&e, "=");
		add_uri(&e, p.v[i].val, p.v[i].len, 0);
		if (e.oom) {
			sqs_buf_free(&e);
			b->oom = 1;
		}
		v[i].enc = e.p;         /* NULL after a failure: sorts as "" */
	}
	if (v)
		qsort(v, p.n, sizeof(*v), by_str);
	for (size_t i = 0; v && i < p.n; i++) {
		if (i)
			sqs_buf_puts(b, "&");
		if (v[i].enc)
			sqs_buf_puts(b, v[i].enc);
		free(v[i].enc);
	}
	free(v);
	sqs_params_free(&p);
}

/* Finds "name=" in the Authorization header's fields; value up to ',' */
static int auth_field(const char *auth, const char *name, char *out,
		      size_t len)
{
	const char *p = strstr(auth, name);
	size_t n;

	if (!p)
		return -1;
	p += strlen(name);
	n = strcspn(p, ", ");
	if (n == 0 || n >= len)
		return -1;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

static time_t amz_time(const char *s)
{
	struct tm tm = { 0 };
	const char *end = s ? strptime(s, "%Y%m%dT%H%M%SZ", &tm) : NULL;

	return end && !*end ? timegm(&tm) : (time_t)-1;
}

int sqs_sigv4_check(struct sqs_req *req, const struct sqs_signed *in)
{
	const char *auth = in->header(in->ctx, "Authorization");
	const char *date = in->header(in->ctx, "X-Amz-Date");
	char cred[512], signed_h[1024], sig[129], scope[512], body_hash[65];
	char creq_hash[65], mine[65], *ak, *rest;
	uint8_t k[SHA256_DIGEST_SIZE], k2[SHA256_DIGEST_SIZE];
	struct sqs_buf c = { 0 }, sts = { 0 };
	const struct key *key = NULL;
	time_t t = amz_time(date);
	char day[9], region[64], secret[140];
	int ok;

	if (!auth || strncmp(auth, "AWS4-HMAC-SHA256 ", 17) ||
	    auth_field(auth, "Credential=", cred, sizeof cred) ||
	    auth_field(auth, "SignedHeaders=", signed_h, sizeof signed_h) ||
	    auth_field(auth, "Signature=", sig, sizeof sig))
		return sqs_fail(req, E_MISSING_AUTH, "Request is missing "
				"Authentication Token");
	ak = cred;
	rest = strchr(cred, '/');
	if (!rest)
		return sqs_fail(req, E_MISSING_AUTH, "Bad Credential.");
	*rest++ = '\0';
	snprintf(scope, sizeof scope, "%s", rest);
	for (size_t i = 0; i < nkeys && !key; i++)
		if (strcmp(keys[i].access, ak) == 0)
			key = &keys[i];
	if (!key)
		return sqs_fail(req, E_INVALID_TOKEN, "The security token "
				"included in the request is invalid.");
	if (t == (time_t)-1 || llabs((long long)(time(NULL) - t)) > SKEW_S)
		return sqs_fail(req, E_SIGNATURE, "Signature expired or "
				"X-Amz-Date missing.");
	if (sscanf(scope, "%8[0-9]/%63[^/]/sqs/aws4_request", day,
		   region) != 2 || strncmp(day, date, 8) != 0)
		return sqs_fail(req, E_SIGNATURE, "Bad credential scope.");
	/* the canonical request */
	sqs_buf_puts(&c, in->method);
	sqs_buf_puts(&c, "\n");
	add_uri(&c, in->path, strlen(in->path), 1);
	sqs_buf_puts(&c, "\n");
	add_query(&c, in->query);
	sqs_buf_puts(&c, "\n");
	for (char *h = signed_h, *next; h && *h; h = next) {
		const char *v;
		size_t vl;

		next = strchr(h, ';');
		if (next)
			*next++ = '\0';
		v = in->header(in->ctx, h);
		if (!v)
			v = "";
		while (*v == ' ')
			v++;
		vl = strlen(v);
		while (vl && v[vl - 1] == ' ')
			vl--;
		sqs_buf_puts(&c, h);
		sqs_buf_puts(&c, ":");
		sqs_buf_put(&c, v, vl);
		sqs_buf_puts(&c, "\n");
		if (next)
			next[-1] = ';';
	}
	sqs_buf_puts(&c, "\n");
	sqs_buf_puts(&c, signed_h);
	sqs_buf_puts(&c, "\n");
	sha256_hex(in->body ? in->body : "", in->len, body_hash);
	sqs_buf_puts(&c, body_hash);
	if (c.oom || !c.p) {
		sqs_buf_free(&c);
		return sqs_fail(req, E_INTERNAL, "Out of memory.");
	}
	sha256_hex(c.p, c.len, creq_hash);
	/* the string to sign, and the key chain */
	sqs_buf_puts(&sts, "AWS4-HMAC-SHA256\n");
	sqs_buf_puts(&sts, date);
	sqs_buf_puts(&sts, "\n");
	sqs_buf_puts(&sts, scope);
	sqs_buf_puts(&sts, "\n");
	sqs_buf_puts(&sts, creq_hash);
	snprintf(secret, sizeof secret, "AWS4%s", key->secret);
	hmac((const uint8_t *)secret, strlen(secret), day, k);
	hmac(k, sizeof k, region, k2);
	hmac(k2, sizeof k2, "sqs", k);
	hmac(k, sizeof k, "aws4_request", k2);
	if (sts.oom || !sts.p) {
		sqs_buf_free(&c);
		sqs_buf_free(&sts);
		return sqs_fail(req, E_INTERNAL, "Out of memory.");
	}
	hmac(k2, sizeof k2, sts.p, k);
	hex(k, sizeof k, mine);
	ok = strlen(sig) == 64 && memeql_sec(mine, sig, 64);
	sqs_buf_free(&c);
	sqs_buf_free(&sts);
	if (!ok)
		return sqs_fail(req, E_SIGNATURE, "The request signature we "
				"calculated does not match the signature you "
				"provided.");
	sqs_ident_of(key->uid, &req->who);
	snprintf(req->who.sender, sizeof req->who.sender, "%s", key->access);
	return 0;
}
