/*
 * stores.c - the stores this build has, in the order spool_open() asks
 * them whether a --data value is theirs. Adding a store: its directory
 * beside rocks/, its table here, its sources in meson.build.
 */
#include "store.h"

extern const struct store_ops rocks_store;      /* rocks/db.c */

const struct store_ops *const store_kinds[] = {
	&rocks_store,
	NULL,
};
