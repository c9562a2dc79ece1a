/*
 * id.c - message ids: 43 bits of push time in ms, 21 bits of counter, and
 * their text form.
 *
 * An id is max(last + 1, now << 21), so ids increase in push order even
 * when the clock stalls or steps back. Each store keeps them from being
 * reused across restarts its own way (rocks/ids.c: a reservation record).
 */
#include <errno.h>
#include <string.h>

#include "core.h"

#define ID_COUNTER_BITS 21

static const char digits[] =
	"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

void spool_id_format(uint64_t id, char out[SPOOL_ID_LEN + 1])
{
	for (int i = SPOOL_ID_LEN - 1; i >= 0; i--) {
		out[i] = digits[id % 62];
		id /= 62;
	}
	out[SPOOL_ID_LEN] = '\0';
}

static int digit_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'Z')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 36;
	return -1;
}

int spool_id_parse(const char *text, size_t len, uint64_t *id)
{
	unsigned __int128 v = 0;

	if (len != SPOOL_ID_LEN)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		int d = digit_value(text[i]);

		if (d < 0)
			return -EINVAL;
		v = v * 62 + (unsigned)d;
	}
	if (v > UINT64_MAX)
		return -EINVAL;
	*id = (uint64_t)v;
	return 0;
}

uint64_t id_next(uint64_t last, int64_t now)
{
	uint64_t floor = now > 0 ? (uint64_t)now << ID_COUNTER_BITS : 0;

	return floor > last + 1 ? floor : last + 1;
}
