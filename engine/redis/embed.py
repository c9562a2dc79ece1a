#!/usr/bin/env python3
"""embed.py IN OUT NAME - writes IN's bytes into the C header OUT as
`static const unsigned char NAME[]` and `NAME_len` (xxd -i's shape), so
that the Redis store's function library is part of the binary."""
import sys

src, out, name = sys.argv[1:4]
data = open(src, 'rb').read()
with open(out, 'w') as f:
    f.write('/* generated from %s by embed.py: do not edit */\n' % src.split('/')[-1])
    f.write('static const unsigned char %s[] = {\n' % name)
    for i in range(0, len(data), 12):
        f.write('\t' + ', '.join('0x%02x' % b for b in data[i:i + 12]) + ',\n')
    f.write('};\nstatic const unsigned int %s_len = %d;\n' % (name, len(data)))
