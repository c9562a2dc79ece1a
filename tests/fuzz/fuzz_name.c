/*
 * fuzz_name.c - queue-name validation (spool_name_valid) and message ids
 * (spool_id_parse), DESIGN §2 and §3. Properties: spool_name_valid agrees
 * with the rule as written (1..200 bytes of [A-Za-z0-9._-], not starting
 * with '.'); spool_queue_create refuses exactly the invalid names with
 * -EINVAL; an id that parses prints back as the same text, and a formatted
 * id parses back to the same number.
 */
#include "fuzz_common.h"

static spool_db *db;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc; (void)argv;
	db = fuzz_open_store();
	return 0;
}

static int rule(const uint8_t *s, size_t n)
{
	if (n < 1 || n > 200 || s[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789._-", s[i]) || s[i] == 0)
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool_queue_attr a = { 0, 0, 0755, 0 };
	char idtext[SPOOL_ID_LEN + 1], *name;
	uint64_t id, id2;
	int valid = spool_name_valid((const char *)data, size);
	int rc;

	FUZZ_CHECK(valid == rule(data, size));

	/* The engine's door takes C strings: cut at the first NUL. */
	name = strndup((const char *)data, size);
	FUZZ_CHECK(name);
	valid = spool_name_valid(name, strlen(name));
	rc = spool_queue_create(db, name, &a);
	if (valid) {
		FUZZ_CHECK(rc == 0 || rc == -EEXIST);
		FUZZ_CHECK(spool_queue_delete(db, name) == 0);
	} else {
		FUZZ_CHECK(rc == -EINVAL);
	}
	free(name);

	if (spool_id_parse((const char *)data, size, &id) == 0) {
		FUZZ_CHECK(size == SPOOL_ID_LEN);
		spool_id_format(id, idtext);
		FUZZ_CHECK(memcmp(idtext, data, SPOOL_ID_LEN) == 0);
	}
	if (size >= 8) {
		memcpy(&id, data, 8);
		spool_id_format(id, idtext);
		rc = spool_id_parse(idtext, SPOOL_ID_LEN, &id2);
		FUZZ_CHECK(rc == 0 && id2 == id);
	}
	return 0;
}
