/*
 * reply.c - responses in either protocol. An action builds its output as
 * the JSON protocol has it (a jansson object); the Query protocol gets the
 * same tree as XML (notes/sqs-api.md §3): lists flattened into repeated
 * elements, attribute maps as Name/Value entries. Errors have SQS's codes,
 * HTTP statuses and both protocols' shapes.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqs_i.h"

#define XMLNS "http://queue.amazonaws.com/doc/2012-11-05/"

struct err_info {
	const char *shape;      /* JSON __type, after com.amazonaws.sqs# */
	const char *code;       /* Query code, x-amzn-query-error */
	int status;
	int sender;             /* the caller's fault (Sender) */
};

static const struct err_info errs[] = {
	[E_NONEXISTENT_QUEUE] = { "QueueDoesNotExist",
		"AWS.SimpleQueueService.NonExistentQueue", 400, 1 },
	[E_QUEUE_EXISTS] = { "QueueNameExists", "QueueAlreadyExists", 400,
		1 },
	[E_RECEIPT_INVALID] = { "ReceiptHandleIsInvalid",
		"ReceiptHandleIsInvalid", 400, 1 },
	[E_NOT_INFLIGHT] = { "MessageNotInflight",
		"AWS.SimpleQueueService.MessageNotInflight", 400, 1 },
	[E_EMPTY_BATCH] = { "EmptyBatchRequest",
		"AWS.SimpleQueueService.EmptyBatchRequest", 400, 1 },
	[E_TOO_MANY_ENTRIES] = { "TooManyEntriesInBatchRequest",
		"AWS.SimpleQueueService.TooManyEntriesInBatchRequest", 400, 1 },
	[E_IDS_NOT_DISTINCT] = { "BatchEntryIdsNotDistinct",
		"AWS.SimpleQueueService.BatchEntryIdsNotDistinct", 400, 1 },
	[E_BATCH_TOO_LONG] = { "BatchRequestTooLong",
		"AWS.SimpleQueueService.BatchRequestTooLong", 400, 1 },
	[E_INVALID_BATCH_ID] = { "InvalidBatchEntryId",
		"AWS.SimpleQueueService.InvalidBatchEntryId", 400, 1 },
	[E_INVALID_CONTENTS] = { "InvalidMessageContents",
		"InvalidMessageContents", 400, 1 },
	[E_INVALID_ATTR_NAME] = { "InvalidAttributeName",
		"InvalidAttributeName", 400, 1 },
	[E_INVALID_ATTR_VALUE] = { "InvalidAttributeValue",
		"InvalidAttributeValue", 400, 1 },
	[E_OVER_LIMIT] = { "OverLimit", "OverLimit", 403, 1 },
	[E_UNSUPPORTED] = { "UnsupportedOperation",
		"AWS.SimpleQueueService.UnsupportedOperation", 400, 1 },
	[E_INVALID_PARAM] = { "InvalidParameterValue",
		"InvalidParameterValue", 400, 1 },
	[E_MISSING_PARAM] = { "MissingParameter", "MissingParameter", 400,
		1 },
	[E_INVALID_ACTION] = { "InvalidAction", "InvalidAction", 400, 1 },
	[E_ACCESS_DENIED] = { "AccessDenied", "AccessDenied", 403, 1 },
	[E_INTERNAL] = { "InternalError", "InternalError", 500, 0 },
	[E_QUEUE_DELETED_RECENTLY] = { "QueueDeletedRecently",
		"AWS.SimpleQueueService.QueueDeletedRecently", 400, 1 },
	[E_MISSING_AUTH] = { "MissingAuthenticationToken",
		"MissingAuthenticationToken", 403, 1 },
	[E_INVALID_TOKEN] = { "InvalidClientTokenId", "InvalidClientTokenId",
		403, 1 },
	[E_SIGNATURE] = { "SignatureDoesNotMatch", "SignatureDoesNotMatch",
		403, 1 },
};

const char *sqs_err_code(enum sqs_err e)
{
	return errs[e].code;
}

enum sqs_err sqs_err_of(int rc)
{
	switch (rc) {
	case -ENOENT:
		return E_NONEXISTENT_QUEUE;
	case -EDQUOT:
		return E_OVER_LIMIT;
	case -EFBIG:
	case -EINVAL:
		return E_INVALID_PARAM;
	case -EACCES:
	case -EPERM:
		return E_ACCESS_DENIED;
	default:
		return E_INTERNAL;
	}
}

/* ---------------------------------------------------------------- XML */

/* Escapes text fully: a raw \r would come back as \n from a parser, and the
 * body's MD5 would then differ. */
static void put_text(struct sqs_buf *b, const char *s, size_t n)
{
	size_t from = 0;

	for (size_t i = 0; i < n; i++) {
		const char *e = s[i] == '&' ? "&amp;" : s[i] == '<' ? "&lt;"
			      : s[i] == '>' ? "&gt;" : s[i] == '"' ? "&quot;"
			      : s[i] == '\r' ? "&#xD;" : NULL;

		if (!e)
			continue;
		sqs_buf_put(b, s + from, i - from);
		sqs_buf_puts(b, e);
		from = i + 1;
	}
	sqs_buf_put(b, s + from, n - from);
}

static void xml_members(struct sqs_buf *b, const char *action, json_t *obj);

static void xml_scalar(struct sqs_buf *b, const char *tag, json_t *v)
{
	sqs_buf_putf(b, "<%s>", tag);
	if (json_is_string(v))
		put_text(b, json_string_value(v), json_string_length(v));
	else if (json_is_boolean(v))
		sqs_buf_puts(b, json_is_true(v) ? "true" : "false");
	else if (json_is_integer(v))
		sqs_buf_putf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	sqs_buf_putf(b, "</%s>", tag);
}

/* The element name of a list member's items. */
static void list_item(const char *action, const char *key, char *out,
		      size_t len)
{
	if (strcmp(key, "QueueUrls") == 0 || strcmp(key, "queueUrls") == 0)
		snprintf(out, len, "QueueUrl");
	else if (strcmp(key, "Messages") == 0)
		snprintf(out, len, "Message");
	else if (strcmp(key, "Successful") == 0)
		snprintf(out, len, "%sResultEntry", action);
	else if (strcmp(key, "Failed") == 0)
		snprintf(out, len, "BatchResultErrorEntry");
	else
		snprintf(out, len, "%s", key);
}

static void xml_member(struct sqs_buf *b, const char *action, const char *key,
		       json_t *v)
{
	char item[128];
	const char *k;
	json_t *e;
	size_t i;

	if (json_is_array(v)) {
		list_item(action, key, item, sizeof item);
		json_array_foreach(v, i, e) {
			if (json_is_object(e)) {
				sqs_buf_putf(b, "<%s>", item);
				xml_members(b, action, e);
				sqs_buf_putf(b, "</%s>", item);
			} else {
				xml_scalar(b, item, e);
			}
		}
	} else if (json_is_object(v) && strcmp(key, "Attributes") == 0) {
		json_object_foreach(v, k, e) {
			sqs_buf_puts(b, "<Attribute><Name>");
			put_text(b, k, strlen(k));
			sqs_buf_puts(b, "</Name>");
			xml_scalar(b, "Value", e);
			sqs_buf_puts(b, "</Attribute>");
		}
	} else if (json_is_object(v) && strcmp(key, "MessageAttributes") == 0) {
		json_object_foreach(v, k, e) {
			sqs_buf_puts(b, "<MessageAttribute><Name>");
			put_text(b, k, strlen(k));
			sqs_buf_puts(b, "</Name><Value>");
			xml_members(b, action, e);
			sqs_buf_puts(b, "</Value></MessageAttribute>");
		}
	} else if (json_is_object(v)) {
		sqs_buf_putf(b, "<%s>", key);
		xml_members(b, action, v);
		sqs_buf_putf(b, "</%s>", key);
	} else {
		xml_scalar(b, key, v);
	}
}

static void xml_members(struct sqs_buf *b, const char *action, json_t *obj)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v)
		xml_member(b, action, k, v);
}

/* Actions whose Query response has a <XResult> element. */
static int has_result(const char *action)
{
	static const char *const with[] = {
		"CreateQueue", "GetQueueUrl", "ListQueues", "SendMessage",
		"SendMessageBatch", "ReceiveMessage", "DeleteMessageBatch",
		"ChangeMessageVisibilityBatch", "GetQueueAttributes",
		"ListDeadLetterSourceQueues", "ListQueueTags",
	};

	for (size_t i = 0; i < sizeof with / sizeof with[0]; i++)
		if (strcmp(with[i], action) == 0)
			return 1;
	return 0;
}

static int finish(struct sqs_buf *b, struct sqs_reply *r)
{
	if (b->oom) {
		free(b->p);
		return -ENOMEM;
	}
	r->body = b->p;
	r->len = b->len;
	return 0;
}

int sqs_reply_ok(int json, const char *action, json_t *out,
		 const char *request_id, struct sqs_reply *r)
{
	struct sqs_buf b = { 0 };

	memset(r, 0, sizeof(*r));
	r->status = 200;
	if (json) {
		r->content_type = "application/x-amz-json-1.0";
		r->body = json_dumps(out, JSON_COMPACT);
		json_decref(out);
		if (!r->body)
			return -ENOMEM;
		r->len = strlen(r->body);
		return 0;
	}
	r->content_type = "text/xml";
	sqs_buf_putf(&b, "<?xml version=\"1.0\"?><%sResponse xmlns=\"" XMLNS "\">",
	     action);
	if (has_result(action)) {
		sqs_buf_putf(&b, "<%sResult>", action);
		xml_members(&b, action, out);
		sqs_buf_putf(&b, "</%sResult>", action);
	}
	sqs_buf_putf(&b, "<ResponseMetadata><RequestId>%s</RequestId>"
		 "</ResponseMetadata></%sResponse>", request_id, action);
	json_decref(out);
	return finish(&b, r);
}

int sqs_reply_err(int json, enum sqs_err e, const char *message,
		  const char *request_id, struct sqs_reply *r)
{
	const struct err_info *ei = &errs[e];
	struct sqs_buf b = { 0 };

	memset(r, 0, sizeof(*r));
	r->status = ei->status;
	if (json) {
		json_t *o = json_pack("{s:s+,s:s}", "__type",
				      "com.amazonaws.sqs#", ei->shape,
				      "message", message);

		r->content_type = "application/x-amz-json-1.0";
		snprintf(r->query_error, sizeof r->query_error, "%s;%s",
			 ei->code, ei->sender ? "Sender" : "Receiver");
		r->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
		if (!r->body)
			return -ENOMEM;
		r->len = strlen(r->body);
		return 0;
	}
	r->content_type = "text/xml";
	sqs_buf_putf(&b, "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"" XMLNS
		 "\"><Error><Type>%s</Type><Code>%s</Code><Message>",
	     ei->sender ? "Sender" : "Receiver", ei->code);
	put_text(&b, message, strlen(message));
	sqs_buf_putf(&b, "</Message><Detail/></Error><RequestId>%s</RequestId>"
		 "</ErrorResponse>", request_id);
	return finish(&b, r);
}
