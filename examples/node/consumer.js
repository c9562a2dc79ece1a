#!/usr/bin/env node
// consumer.js MOUNT QUEUE [IDLE_MS] - an at-least-once consumer with only
// the fs module. Reads QUEUE/claim opened O_NONBLOCK (EAGAIN: empty, try
// again shortly) to lease a message, reads its body from leased/ID,
// handles it, and acks by unlinking leased/ID. A message the handler
// fails on is left leased: it comes back after visibility_timeout, and
// goes to the dead-letter queue after max_receives (to give one back at
// once instead: fs.rename(leased/ID, peek/ID)). Exits after IDLE_MS
// (default 1000) without a message and prints what it handled.
'use strict';
const fs = require('fs');
const path = require('path');

const [mount, queue, idleArg = '1000'] = process.argv.slice(2);
const dir = path.join(mount, queue);
const idleMs = Number(idleArg);

function claim() {
  const fd = fs.openSync(path.join(dir, 'claim'),
    fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    const buf = Buffer.alloc(64);
    const n = fs.readSync(fd, buf, 0, buf.length, null);
    return buf.toString('utf8', 0, n).trim();
  } catch (e) {
    if (e.code === 'EAGAIN') return null;
    throw e;
  } finally {
    fs.closeSync(fd);
  }
}

function handle(body) {
  const msg = JSON.parse(body);   // throws on bad JSON
  return msg.n;
}

async function main() {
  let handled = 0, failed = 0, sum = 0, idleSince = Date.now();
  while (Date.now() - idleSince < idleMs) {
    const id = claim();
    if (!id) {
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    idleSince = Date.now();
    const leased = path.join(dir, 'leased', id);
    try {
      sum += handle(await fs.promises.readFile(leased, 'utf8'));
      await fs.promises.unlink(leased);            // ack
      handled++;
    } catch (e) {
      console.error(`consumer: ${id}: ${e.message}; left to its lease`);
      failed++;
    }
  }
  console.log(`handled ${handled} failed ${failed} sum ${sum}`);
}

main().catch((e) => { console.error(`consumer: ${e.message}`); process.exit(1); });
