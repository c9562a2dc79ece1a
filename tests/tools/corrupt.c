/*
 * spool-corrupt - flips a byte of stored message bodies, offline, as bit
 * rot would (engine/spool_test.h: spool_test_corrupt). For the corruption
 * test of the filesystem suite: stop the daemon, run this on its --data,
 * start the daemon again.
 *
 *   spool-corrupt DATA ID...
 *
 * Exits 0 when every id was corrupted, 1 on a usage error, 2 when the store
 * cannot be opened, 3 when an id has no stored body.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "spool.h"
#include "spool_test.h"

int main(int argc, char **argv)
{
	struct spool_options o;
	spool_db *db;
	int rc, status = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: %s DATA ID...\n", argv[0]);
		return 1;
	}
	spool_options_init(&o);
	o.manual_timers = 1;
	rc = spool_open(argv[1], &o, &db);
	if (rc) {
		fprintf(stderr, "spool-corrupt: %s: %s\n", argv[1], strerror(-rc));
		return 2;
	}
	for (int i = 2; i < argc; i++) {
		uint64_t id;

		rc = spool_id_parse(argv[i], strlen(argv[i]), &id);
		if (!rc)
			rc = spool_test_corrupt(db, id);
		if (rc) {
			fprintf(stderr, "spool-corrupt: %s: %s\n", argv[i],
				strerror(-rc));
			status = 3;
		}
	}
	spool_close(db);
	return status;
}
