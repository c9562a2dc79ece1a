/*
 * ctx.c - the filesystem's state (struct fs_ctx, fs.h): made and freed.
 * main() makes one and hands it to the FUSE session as its userdata; no
 * file of fs/ holds it in a global (tools/fs-globals checks that). Alone
 * in its file so that every file may use it without depending on another
 * (docs/decisions.md: fs/ file cycles).
 */
#include <stdlib.h>

#include "fs.h"

struct fs_ctx *fs_ctx_new(void)
{
	struct fs_ctx *fs = calloc(1, sizeof *fs);
	pthread_condattr_t ca;

	if (!fs)
		return NULL;
	pthread_mutex_init(&fs->lock, NULL);
	pthread_mutex_init(&fs->open_files.lock, NULL);
	pthread_mutex_init(&fs->dirs.lock, NULL);
	pthread_mutex_init(&fs->wait.lock, NULL);
	/* The deadline thread sleeps on CLOCK_MONOTONIC deadlines. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&fs->wait.cond, &ca);
	pthread_condattr_destroy(&ca);
	return fs;
}

void fs_ctx_free(struct fs_ctx *fs)
{
	if (!fs)
		return;
	fs_listed_free(fs);
	pthread_cond_destroy(&fs->wait.cond);
	pthread_mutex_destroy(&fs->wait.lock);
	pthread_mutex_destroy(&fs->dirs.lock);
	pthread_mutex_destroy(&fs->open_files.lock);
	pthread_mutex_destroy(&fs->lock);
	free(fs);
}
