#!/usr/bin/env node
// producer.js MOUNT QUEUE [COUNT] - pushes COUNT JSON messages with nothing
// but the fs module: each writeFile to a new name in the queue directory is
// one message, durable once the promise resolves (spoolfs commits at close).
'use strict';
const fs = require('fs/promises');
const path = require('path');

async function main() {
  const [mount, queue, count = '10'] = process.argv.slice(2);
  const dir = path.join(mount, queue);
  await fs.mkdir(dir).catch((e) => { if (e.code !== 'EEXIST') throw e; });
  for (let i = 0; i < Number(count); i++) {
    const body = JSON.stringify({ n: i, at: Date.now() });
    await fs.writeFile(path.join(dir, `order-${i}.json`), body);
  }
  console.log(`pushed ${count} messages to ${dir}`);
}

main().catch((e) => { console.error(`producer: ${e.message}`); process.exit(1); });
