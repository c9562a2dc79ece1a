/*
 * params.c - request parameters. Both protocols end up in one flat list
 * named as the Query protocol names them, so the actions read one form:
 * - Query: the form body (and the URL's query), percent-decoded;
 * - JSON 1.0: the body's members, flattened: scalars by name, lists as
 *   <Singular>.N, maps as <Singular>.N.Name / .Value[.<member>], and a
 *   batch's Entries as <Action>RequestEntry.N.<member>.
 * Nothing here knows an action's meaning; this is the code the fuzzer
 * feeds (tests/fuzz/fuzz_sqs_params.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqs_i.h"

/* Longest parameter name we build or accept. */
#define KEY_MAX 512
/* Most parameters in one request: 10 entries of 10 attributes of 3 parts
 * is 300; anything far past that is not a real client. */
#define PARAMS_MAX 4096

int sqs_params_add(struct sqs_params *p, const char *key, const char *val,
		   size_t len)
{
	struct sqs_param *e;

	if (p->n >= PARAMS_MAX || !*key || strlen(key) >= KEY_MAX)
		return -EINVAL;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		struct sqs_param *v = realloc(p->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	e = &p->v[p->n];
	e->key = strdup(key);
	e->val = malloc(len + 1);
	if (!e->key || !e->val) {
		free(e->key);
		free(e->val);
		return -ENOMEM;
	}
	memcpy(e->val, val, len);
	e->val[len] = '\0';
	e->len = len;
	p->n++;
	return 0;
}

const char *sqs_param(const struct sqs_params *p, const char *key,
		      size_t *len)
{
	/* The last one wins, as for a repeated form field. */
	for (size_t i = p->n; i-- > 0;) {
		if (strcmp(p->v[i].key, key) == 0) {
			if (len)
				*len = p->v[i].len;
			return p->v[i].val;
		}
	}
	return NULL;
}

const char *sqs_paramf(const struct sqs_params *p, size_t *len,
		       const char *fmt, ...)
{
	char key[KEY_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(key, sizeof key, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof key)
		return NULL;
	return sqs_param(p, key, len);
}

void sqs_params_free(struct sqs_params *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->v[i].key);
		free(p->v[i].val);
	}
	free(p->v);
	memset(p, 0, sizeof(*p));
}

/* ------------------------------------------------------------- forms */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes s[0..len) into out (at least len + 1 bytes). */
static int pct_decode(const char *s, size_t len, char *out, size_t *outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '+') {
			out[o++] = ' ';
		} else if (s[i] == '%') {
			int hi, lo;

			if (i + 2 >= len)
				return -EINVAL;
			hi = hexval(s[i + 1]);
			lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	*outlen = o;
	return 0;
}

static int form_pair(struct sqs_params *p, const char *s, size_t len)
{
	const char *eq = memchr(s, '=', len);
	size_t klen = eq ? (size_t)(eq - s) : len, vlen, kout;
	char *buf = malloc(len + 2);
	int rc;

	if (!buf)
		return -ENOMEM;
	rc = pct_decode(s, klen, buf, &kout);
	if (!rc && (kout == 0 || strlen(buf) != kout))
		rc = -EINVAL;   /* an empty key, or a NUL in it */
	if (!rc)
		rc = pct_decode(eq ? eq + 1 : s + len, eq ? len - klen - 1 : 0,
				buf + kout + 1, &vlen);
	if (!rc)
		rc = sqs_params_add(p, buf, buf + kout + 1, vlen);
	free(buf);
	return rc;
}

int sqs_form_decode(struct sqs_params *p, const char *text, size_t len)
{
	size_t i = 0;

	while (i < len) {
		const char *amp = memchr(text + i, '&', len - i);
		size_t end = amp ? (size_t)(amp - text) : len;
		int rc = 0;

		if (end > i)
			rc = form_pair(p, text + i, end - i);
		if (rc)
			return rc;
		i = end + 1;
	}
	return 0;
}

/* -------------------------------------------------------------- JSON */

/* How a JSON member is named in the Query protocol. */
enum shape { S_SCALAR, S_LIST, S_MAP };

struct member {
	const char *json;
	const char *query;      /* list element / map entry name */
	enum shape shape;
	const char *key_name;   /* maps: the entry's key member */
};

static const struct member members[] = {
	{ "AttributeNames", "AttributeName", S_LIST, NULL },
	{ "MessageAttributeNames", "MessageAttributeName", S_LIST, NULL },
	{ "MessageSystemAttributeNames", "MessageSystemAttributeName", S_LIST,
	  NULL },
	{ "Attributes", "Attribute", S_MAP, "Name" },
	{ "MessageAttributes", "MessageAttribute", S_MAP, "Name" },
	{ "MessageSystemAttributes", "MessageSystemAttribute", S_MAP, "Name" },
	{ "tags", "Tag", S_MAP, "Key" },
	{ "Tags", "Tag", S_MAP, "Key" },
	{ "TagKeys", "TagKey", S_LIST, NULL },
	{ "StringListValues", "StringListValue", S_LIST, NULL },
	{ "BinaryListValues", "BinaryListValue", S_LIST, NULL },
	{ "AWSAccountIds", "AWSAccountId", S_LIST, NULL },
	{ "Actions", "ActionName", S_LIST, NULL },
};

static const struct member *member_of(const char *name)
{
	for (size_t i = 0; i < sizeof members / sizeof members[0]; i++)
		if (strcmp(members[i].json, name) == 0)
			return &members[i];
	return NULL;
}

static int add_scalar(struct sqs_params *p, const char *key, json_t *v)
{
	char num[64];

	if (json_is_string(v))
		return sqs_params_add(p, key, json_string_value(v),
				      json_string_length(v));
	if (json_is_integer(v))
		snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
	else if (json_is_real(v))
		snprintf(num, sizeof num, "%.17g", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(num, sizeof num, "%s", json_is_true(v) ? "true"
								: "false");
	else if (json_is_null(v))
		return 0;
	else
		return -EINVAL;
	return sqs_params_add(p, key, num, strlen(num));
}

static int flatten_object(struct sqs_params *p, const char *prefix,
			  json_t *obj, int depth);

/* Adds value v of member name under prefix. */
static int flatten(struct sqs_params *p, const char *prefix, const char *name,
		   json_t *v, int depth)
{
	const struct member *m = member_of(name);
	char key[KEY_MAX];
	size_t i = 0;
	int rc = 0;

	if (depth > 4)
		return -EINVAL;
	if (json_is_array(v) && (!m || m->shape == S_LIST)) {
		json_t *e;

		json_array_foreach(v, i, e) {
			int obj = json_is_object(e);

			/* the key with its suffix must fit: no strcat after */
			if (snprintf(key, sizeof key, "%s%s.%zu%s", prefix,
				     m ? m->query : name, i + 1,
				     obj ? "." : "") >= KEY_MAX)
				return -EINVAL;
			if (obj)
				rc = flatten_object(p, key, e, depth + 1);
			else
				rc = add_scalar(p, key, e);
			if (rc)
				return rc;
		}
		return 0;
	}
	if (json_is_object(v) && m && m->shape == S_MAP) {
		const char *k;
		json_t *e;

		json_object_foreach(v, k, e) {
			int obj = json_is_object(e);
			char sub[KEY_MAX];

			/* PREFIX.N.Name and PREFIX.N.Value[.]: both must fit */
			++i;
			if (snprintf(sub, sizeof sub, "%s%s.%zu.%s", prefix,
				     m->query, i, m->key_name) >= KEY_MAX ||
			    snprintf(key, sizeof key, "%s%s.%zu.Value%s",
				     prefix, m->query, i,
				     obj ? "." : "") >= KEY_MAX)
				return -EINVAL;
			rc = sqs_params_add(p, sub, k, strlen(k));
			if (!rc && obj)
				rc = flatten_object(p, key, e, depth + 1);
			else if (!rc)
				rc = add_scalar(p, key, e);
			if (rc)
				return rc;
		}
		return 0;
	}
	if (json_is_object(v)) {
		if (snprintf(key, sizeof key, "%s%s.", prefix, name) >= KEY_MAX)
			return -EINVAL;
		return flatten_object(p, key, v, depth + 1);
	}
	if (json_is_array(v))
		return -EINVAL;
	if (snprintf(key, sizeof key, "%s%s", prefix, name) >= KEY_MAX)
		return -EINVAL;
	return add_scalar(p, key, v);
}

static int flatten_object(struct sqs_params *p, const char *prefix,
			  json_t *obj, int depth)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v) {
		int rc = flatten(p, prefix, k, v, depth);

		if (rc)
			return rc;
	}
	return 0;
}

int sqs_json_decode(struct sqs_params *p, const char *action,
		    const char *text, size_t len)
{
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	json_t *entries;
	char prefix[KEY_MAX];
	int rc;

	if (!root || !json_is_object(root)) {
		json_decref(root);
		return -EINVAL;
	}
	/* A batch's entries are named after the action. */
	entries = json_object_get(root, "Entries");
	if (entries) {
		json_incref(entries);
		json_object_del(root, "Entries");
		snprintf(prefix, sizeof prefix, "%.64sRequestEntry", action);
		rc = json_is_array(entries)
			     ? flatten(p, "", prefix, entries, 0)
			     : -EINVAL;
		json_decref(entries);
		if (rc) {
			json_decref(root);
			return rc;
		}
	}
	rc = flatten_object(p, "", root, 0);
	json_decref(root);
	return rc;
}
