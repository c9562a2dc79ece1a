/*
 * xlist.c - the in-memory xattr lists (fs_xattr_*) of drafts and names
 * being written, until the push turns them into the message's options and
 * attributes (push.c). The FUSE xattr requests are in xattr.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/xattr.h>

#include "fs.h"

static struct fs_xattr **xattr_find(struct fs_xattr **list, const char *name)
{
	while (*list && strcmp((*list)->name, name) != 0)
		list = &(*list)->next;
	return list;
}

int fs_xattr_set(struct fs_xattr **list, const char *name, const void *value,
		 size_t size, int flags)
{
	struct fs_xattr **p = xattr_find(list, name), *x = *p;
	void *copy;

	if (x && (flags & XATTR_CREATE))
		return -EEXIST;
	if (!x && (flags & XATTR_REPLACE))
		return -ENODATA;
	copy = malloc(size ? size : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, value, size);
	if (!x) {
		x = calloc(1, sizeof *x);
		if (!x || !(x->name = strdup(name))) {
			free(x);
			free(copy);
			return -ENOMEM;
		}
		*p = x;
	}
	free(x->value);
	x->value = copy;
	x->len = size;
	return 0;
}

int fs_xattr_remove(struct fs_xattr **list, const char *name)
{
	struct fs_xattr **p = xattr_find(list, name), *x = *p;

	if (!x)
		return -ENODATA;
	*p = x->next;
	free(x->name);
	free(x->value);
	free(x);
	return 0;
}

void fs_xattr_free(struct fs_xattr *list)
{
	while (list) {
		struct fs_xattr *n = list->next;

		free(list->name);
		free(list->value);
		free(list);
		list = n;
	}
}

ssize_t fs_xattr_get(struct fs_xattr *list, const char *name, char *buf,
			 size_t size)
{
	struct fs_xattr *x = *xattr_find(&list, name);

	if (!x)
		return -ENODATA;
	if (size == 0)
		return x->len;
	if (size < x->len)
		return -ERANGE;
	memcpy(buf, x->value, x->len);
	return x->len;
}

ssize_t fs_xattr_list(struct fs_xattr *list, char *buf, size_t size)
{
	size_t need = 0;
	struct fs_xattr *x;

	for (x = list; x; x = x->next)
		need += strlen(x->name) + 1;
	if (size == 0)
		return need;
	if (size < need)
		return -ERANGE;
	for (x = list; x; x = x->next) {
		size_t n = strlen(x->name) + 1;

		memcpy(buf, x->name, n);
		buf += n;
	}
	return need;
}
