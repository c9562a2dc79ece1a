/*
 * ops.c - the RocksDB store's table of operations (store.h): each entry
 * is in the file of its kind (queue.c, push.c, msg.c, timer.c, seams.c).
 */
#include "rocks.h"

const struct store_ops rocks_store = {
	.kind = "rocksdb",
	.claims = rocks_claims,
	.open = rocks_open,
	.close = rocks_close,
	.tick = rocks_tick,
	.queue_create = rocks_queue_create,
	.queue_delete = rocks_queue_delete,
	.queue_open = rocks_queue_open,
	.queue_close = rocks_queue_close,
	.queue_alive = rocks_queue_alive,
	.queue_next = rocks_queue_next,
	.queue_count = rocks_queue_count,
	.queue_getattr = rocks_queue_getattr,
	.queue_setattr = rocks_queue_setattr,
	.settings_get = rocks_settings_get,
	.config_apply = rocks_config_apply,
	.push_batch = rocks_push_batch,
	.msg_stat = rocks_msg_stat,
	.msg_record = rocks_msg_record,
	.msg_set_corrupt = rocks_msg_set_corrupt,
	.lease_next = rocks_lease_next,
	.lease_id = rocks_lease_id,
	.pop = rocks_pop,
	.ack = rocks_ack,
	.release = rocks_release,
	.lease_extend = rocks_lease_extend,
	.delete = rocks_delete,
	.move = rocks_move,
	.move_all = rocks_move_all,
	.purge = rocks_purge,
	.list = rocks_list,
	.stats_get = rocks_stats_get,
	.test_fail_writes = rocks_test_fail_writes,
	.test_body_get = rocks_test_body_get,
	.test_body_put = rocks_test_body_put,
};
