// tests/sqs-js/client.cjs DIR - runs what typical client code does against
// the spoolfs SQS endpoint at $SQS_ENDPOINT with the @aws-sdk/client-sqs
// installed in DIR (json/ or query/: package-lock.json pins each). The
// SDK checks every body MD5 on send and receive itself. Prints "ok" and
// the protocol seen; exits 1 on the first failed check.
'use strict';
const assert = require('node:assert/strict');
const path = require('node:path');
const { createRequire } = require('node:module');

const dir = path.resolve(process.argv[2]);
const sdk = createRequire(path.join(dir, 'package.json'))('@aws-sdk/client-sqs');
const client = new sdk.SQSClient({
  endpoint: process.env.SQS_ENDPOINT,
  region: 'us-east-1',
  credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
  maxAttempts: 1,
});
let protocol = '?';
client.middlewareStack.add((next) => async (args) => {
  const ct = args.request.headers['content-type'] || '';
  protocol = ct.startsWith('application/x-amz-json') ? 'json' : 'query';
  return next(args);
}, { step: 'finalizeRequest', name: 'spoolfsProtocol' });

const send = (Cmd, input) => client.send(new Cmd(input));

async function rejects(promise, name, code) {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.name, name);
    if (code) assert.equal(e.Code || e.name, code);
    return;
  }
  assert.fail('no ' + name);
}

async function main() {
  const { QueueUrl: url } = await send(sdk.CreateQueueCommand,
    { QueueName: 'js', Attributes: { VisibilityTimeout: '60' } });
  assert.match(url, /\/000000000000\/js$/);
  const attrs = {
    colour: { DataType: 'String', StringValue: 'red' },
    n: { DataType: 'Number', StringValue: '42' },
    b: { DataType: 'Binary', BinaryValue: Uint8Array.from([0, 1]) },
  };
  const sent = await send(sdk.SendMessageCommand,
    { QueueUrl: url, MessageBody: 'one', MessageAttributes: attrs });
  assert.equal(sent.MD5OfMessageAttributes, '79cc5e09e0bc00cb415888ccd12bb770');
  const batch = await send(sdk.SendMessageBatchCommand, {
    QueueUrl: url,
    Entries: [...Array(10).keys()].map((i) => ({ Id: 'b' + i, MessageBody: 'batch ' + i })),
  });
  assert.equal(batch.Successful.length, 10);
  const one = await send(sdk.ReceiveMessageCommand,
    { QueueUrl: url, WaitTimeSeconds: 1, MessageAttributeNames: ['All'] });
  assert.equal(one.Messages.length, 1);
  assert.equal(one.Messages[0].Body, 'one');
  assert.deepEqual([...one.Messages[0].MessageAttributes.b.BinaryValue], [0, 1]);
  assert.equal(one.Messages[0].MessageAttributes.n.DataType, 'Number');
  const ten = await send(sdk.ReceiveMessageCommand,
    { QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 2 });
  assert.deepEqual(ten.Messages.map((m) => m.Body),
    [...Array(10).keys()].map((i) => 'batch ' + i));
  await send(sdk.ChangeMessageVisibilityCommand, {
    QueueUrl: url, ReceiptHandle: one.Messages[0].ReceiptHandle, VisibilityTimeout: 0 });
  const again = await send(sdk.ReceiveMessageCommand, { QueueUrl: url, WaitTimeSeconds: 5 });
  assert.equal(again.Messages[0].Body, 'one');
  await send(sdk.DeleteMessageCommand,
    { QueueUrl: url, ReceiptHandle: again.Messages[0].ReceiptHandle });
  const del = await send(sdk.DeleteMessageBatchCommand, {
    QueueUrl: url,
    Entries: ten.Messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
  });
  assert.equal(del.Successful.length, 10);
  await send(sdk.SetQueueAttributesCommand,
    { QueueUrl: url, Attributes: { DelaySeconds: '1' } });
  const got = await send(sdk.GetQueueAttributesCommand,
    { QueueUrl: url, AttributeNames: ['All'] });
  assert.equal(got.Attributes.DelaySeconds, '1');
  assert.equal(got.Attributes.VisibilityTimeout, '60');
  await send(sdk.SendMessageCommand, { QueueUrl: url, MessageBody: 'gone', DelaySeconds: 0 });
  await send(sdk.PurgeQueueCommand, { QueueUrl: url });
  const none = await send(sdk.ReceiveMessageCommand, { QueueUrl: url });
  assert.equal(none.Messages, undefined);
  await rejects(send(sdk.GetQueueUrlCommand, { QueueName: 'nope' }), 'QueueDoesNotExist');
  await rejects(send(sdk.DeleteMessageCommand, { QueueUrl: url, ReceiptHandle: 'bad' }),
    'ReceiptHandleIsInvalid');
  await send(sdk.DeleteQueueCommand, { QueueUrl: url });
  console.log('ok ' + protocol);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
