/*
 * peer.c - who is at the other end of a loopback connection, and what
 * that user may do to a queue. A TCP port on 127.0.0.1 is open to every
 * local user, so the endpoint finds the peer's uid the way `ss -e` does:
 * the kernel's socket table (/proc/net/tcp, tcp6) lists the peer's socket,
 * its addresses the mirror of ours, with its owner's uid. The mode rules
 * are those the kernel applies to the mount (default_permissions).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sqs_i.h"

/* An address as /proc/net/tcp[6] prints it: the raw 32-bit words of the
 * address in host order, then the port. */
static void proc_addr(const struct sockaddr_storage *sa, char *out,
		      size_t len)
{
	if (sa->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		snprintf(out, len, "%08X:%04X", in->sin_addr.s_addr,
			 ntohs(in->sin_port));
	} else {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		uint32_t w[4];

		memcpy(w, &in6->sin6_addr, sizeof w);
		snprintf(out, len, "%08X%08X%08X%08X:%04X", w[0], w[1], w[2],
			 w[3], ntohs(in6->sin6_port));
	}
}

/* The uid of the socket whose local address is local and remote remote. */
static int find_uid(const char *file, const char *local, const char *remote,
		    uid_t *uid)
{
	FILE *f = fopen(file, "r");
	char line[512], l[64], r[64];
	unsigned long u;
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (rc && fgets(line, sizeof line, f)) {
		if (sscanf(line, " %*s %63s %63s %*s %*s %*s %*s %lu", l, r,
			   &u) == 3 &&
		    strcmp(l, local) == 0 && strcmp(r, remote) == 0) {
			*uid = (uid_t)u;
			rc = 0;
		}
	}
	fclose(f);
	return rc;
}

static void fill_groups(struct sqs_ident *id)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int n = (int)(sizeof id->groups / sizeof id->groups[0]);

	id->gid = (gid_t)-1;
	id->ngroups = 0;
	if (getpwuid_r(id->uid, &pw, buf, sizeof buf, &res) != 0 || !res)
		return;
	id->gid = pw.pw_gid;
	if (getgrouplist(pw.pw_name, pw.pw_gid, id->groups, &n) >= 0)
		id->ngroups = n;
}

void sqs_ident_of(uid_t uid, struct sqs_ident *id)
{
	memset(id, 0, sizeof(*id));
	id->uid = uid;
	id->known = 1;
	snprintf(id->sender, sizeof id->sender, "%u", (unsigned)uid);
	fill_groups(id);
}

int sqs_peer_ident(int fd, struct sqs_ident *id)
{
	struct sockaddr_storage me, peer;
	socklen_t ml = sizeof me, pl = sizeof peer;
	char local[64], remote[64];
	int rc;

	memset(id, 0, sizeof(*id));
	if (getsockname(fd, (struct sockaddr *)&me, &ml) < 0 ||
	    getpeername(fd, (struct sockaddr *)&peer, &pl) < 0)
		return -errno;
	if (peer.ss_family != AF_INET && peer.ss_family != AF_INET6)
		return -EAFNOSUPPORT;
	/* The peer's socket: its local address is our peer address. */
	proc_addr(&peer, local, sizeof local);
	proc_addr(&me, remote, sizeof remote);
	rc = find_uid(peer.ss_family == AF_INET ? "/proc/net/tcp"
						: "/proc/net/tcp6",
		      local, remote, &id->uid);
	if (rc)
		return rc;
	sqs_ident_of(id->uid, id);
	return 0;
}

static int in_group(const struct sqs_ident *id, gid_t g)
{
	if (id->gid == g)
		return 1;
	for (int i = 0; i < id->ngroups; i++)
		if (id->groups[i] == g)
			return 1;
	return 0;
}

int sqs_may(const struct sqs_ident *id, const struct spool_queue_attr *a,
	    int want)
{
	unsigned bits;

	if (!id->known)
		return 0;
	if (id->uid == 0)
		return 1;
	if (id->uid == a->uid)
		bits = (a->mode >> 6) & 7;
	else if (in_group(id, a->gid))
		bits = (a->mode >> 3) & 7;
	else
		bits = a->mode & 7;
	return ((int)bits & want) == want;
}
