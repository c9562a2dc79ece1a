/* Placeholder until the filesystem lands: links the engine. */
#include <stdio.h>
#include "spool.h"

int main(void)
{
	struct spool_options o;

	spool_options_init(&o);
	fprintf(stderr, "spoolfs: not built yet\n");
	return 1;
}
