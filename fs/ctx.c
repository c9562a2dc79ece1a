/*
 * ctx.c - the filesystem's one state (struct fs_ctx, fs.h), alone in its
 * file so that every file may use it without depending on another that
 * holds it (docs/decisions.md: fs/ file cycles). It is still a process
 * global; making it the FUSE session's userdata is the part of issue 13
 * left open.
 */
#include "fs.h"

struct fs_ctx fs;
