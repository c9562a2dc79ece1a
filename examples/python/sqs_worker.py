#!/usr/bin/env python3
"""sqs_worker.py QUEUE [--max N] [--idle S] -- HANDLER [ARGS...]

An ordinary SQS worker, written against boto3's SQS client and nothing of
spoolfs: long-poll for messages, run HANDLER with the body on stdin, delete
the message when it succeeds, make it visible again at once when it fails.
It stops after N messages, or once a poll of S seconds (at most 20) came
back empty.

Pointed at spoolfs by environment only (spoolfs --sqs 9324 MNT):

    AWS_ENDPOINT_URL_SQS=http://127.0.0.1:9324 AWS_DEFAULT_REGION=us-east-1 \\
    AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x \\
        examples/python/sqs_worker.py jobs -- sh -c 'cat >> done.txt'

Current boto3 releases read AWS_ENDPOINT_URL_SQS themselves; Debian 12's
(1.26) does not, so the one line below passes it on (and does nothing when
it is unset, so the same worker runs against Amazon SQS).
"""
import argparse
import os
import subprocess
import sys

import boto3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('queue')
    ap.add_argument('--max', type=int, default=0)
    ap.add_argument('--idle', type=int, default=20)
    ap.add_argument('handler', nargs='+')
    a = ap.parse_args()
    sqs = boto3.client('sqs',
                       endpoint_url=os.environ.get('AWS_ENDPOINT_URL_SQS'))
    url = sqs.get_queue_url(QueueName=a.queue)['QueueUrl']
    done = failed = 0
    while not a.max or done + failed < a.max:
        want = 10 if not a.max else min(10, a.max - done - failed)
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=want,
                                  WaitTimeSeconds=min(a.idle, 20))
        if not got.get('Messages'):
            break
        for m in got['Messages']:
            r = subprocess.run(a.handler, input=m['Body'].encode(),
                               env=dict(os.environ, SQS_MESSAGE_ID=m['MessageId']))
            if r.returncode == 0:
                sqs.delete_message(QueueUrl=url,
                                   ReceiptHandle=m['ReceiptHandle'])
                done += 1
            else:
                sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=m['ReceiptHandle'],
                    VisibilityTimeout=0)
                failed += 1
    print('sqs_worker: %d done, %d released' % (done, failed))
    return 0


if __name__ == '__main__':
    sys.exit(main())
