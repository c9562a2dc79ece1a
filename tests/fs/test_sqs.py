"""DESIGN.md §11: the SQS endpoint (--sqs), with a real client: Debian's
boto3 (botocore speaks the Query protocol), plus raw HTTP for what no
Debian client sends (AWS JSON 1.0, a queue taken from the path), and the
shell on the same queues."""
import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import threading
from pathlib import Path

import boto3
import botocore
import botocore.loaders
import pytest
from botocore.config import Config

from conftest import BIN
from spoolutil import claim, ids, stats, wait_until

SERVING = re.compile(r'serving SQS on http://[0-9.]+:(\d+)')


def md5(data):
    return hashlib.md5(data).hexdigest()


def md5_attrs(attrs):
    """MD5OfMessageAttributes as SQS computes it (notes/sqs-api.md §4.2),
    written here independently of the daemon's C."""
    h = hashlib.md5()
    for name in sorted(attrs):
        a = attrs[name]
        h.update(struct.pack('>I', len(name.encode())) + name.encode())
        t = a['DataType'].encode()
        h.update(struct.pack('>I', len(t)) + t)
        if 'BinaryValue' in a:
            v = a['BinaryValue']
            h.update(b'\x02' + struct.pack('>I', len(v)) + v)
        else:
            v = a['StringValue'].encode()
            h.update(b'\x01' + struct.pack('>I', len(v)) + v)
    return h.hexdigest()


class Sqs:
    def __init__(self, mount):
        self.m = mount
        found = SERVING.search(mount.log())
        assert found, mount.log()
        self.port = int(found.group(1))
        self.endpoint = 'http://127.0.0.1:%d' % self.port
        self.c = self.client()

    def client(self, data_path=None, key=('x', 'y')):
        """A boto3 client; with data_path (json_model()), one that speaks
        AWS JSON 1.0 (botocore reads AWS_DATA_PATH when a session starts)."""
        old = os.environ.get('AWS_DATA_PATH')
        try:
            if data_path:
                os.environ['AWS_DATA_PATH'] = str(data_path)
            session = boto3.session.Session()
            return session.client(
                'sqs', endpoint_url=self.endpoint, region_name='us-east-1',
                aws_access_key_id=key[0], aws_secret_access_key=key[1],
                config=Config(retries={'max_attempts': 1}, read_timeout=60))
        finally:
            if old is None:
                os.environ.pop('AWS_DATA_PATH', None)
            else:
                os.environ['AWS_DATA_PATH'] = old

    def mkq(self, name='jobs', **attrs):
        return self.c.create_queue(
            QueueName=name,
            Attributes={k: str(v) for k, v in attrs.items()})['QueueUrl']

    def raw(self, body, headers, path='/'):
        """POSTs body; returns (status, headers dict, body bytes)."""
        conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=60)
        try:
            conn.request('POST', path, body=body, headers=headers)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, \
                r.read()
        finally:
            conn.close()

    def json(self, action, params):
        st, h, b = self.raw(json.dumps(params), {
            'Content-Type': 'application/x-amz-json-1.0',
            'X-Amz-Target': 'AmazonSQS.' + action})
        assert h['content-type'] == 'application/x-amz-json-1.0'
        return st, h, json.loads(b)


@pytest.fixture
def sqs(mount_factory):
    return Sqs(mount_factory('--sqs', '0'))


def code(e):
    return e.value.response['Error']['Code']


def json_model(root):
    """Writes under root a botocore data tree whose SQS model speaks AWS
    JSON 1.0, derived from Debian's installed Query model: the same
    operations and shapes, without the Query serialisation hints, and the
    JSON protocol's metadata (as current botocore has it). The project
    commits no copy of a model; this is made at run time."""
    loader = botocore.loaders.Loader()
    model = loader.load_service_model('sqs', 'service-2')
    hints = ('locationName', 'flattened', 'resultWrapper', 'documentation',
             'xmlNamespace')

    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if k not in hints}
        if isinstance(o, list):
            return [strip(x) for x in o]
        return o

    model = strip(model)
    assert model['metadata']['protocol'] == 'query'
    model['metadata'].update(protocol='json', jsonVersion='1.0',
                             targetPrefix='AmazonSQS', awsQueryCompatible={})
    d = Path(root) / 'sqs' / model['metadata']['apiVersion']
    d.mkdir(parents=True)
    (d / 'service-2.json').write_text(json.dumps(model))
    return root


@pytest.fixture(params=['query', 'json'])
def proto_client(request, sqs, tmp_path):
    """(protocol, boto3 client) for each protocol Debian's boto3 can speak."""
    if request.param == 'query':
        c = sqs.client()
    else:
        c = sqs.client(json_model(tmp_path))
    assert c.meta.service_model.protocol == request.param
    return request.param, c


@pytest.mark.across_families(
    'a RedrivePolicy naming a queue of another family (EINVAL in a '
    'Cluster)')
def test_client_sequence(sqs, proto_client):
    """What typical client code does, in each protocol, through boto3."""
    proto, c = proto_client
    dlq = c.create_queue(QueueName='dlq')['QueueUrl']
    url = c.create_queue(QueueName='jobs', Attributes={
        'VisibilityTimeout': '60',
        'RedrivePolicy': json.dumps({
            'deadLetterTargetArn': 'arn:aws:sqs:us-east-1:000000000000:dlq',
            'maxReceiveCount': 3})})['QueueUrl']
    assert url == sqs.endpoint + '/000000000000/jobs'
    r = c.send_message(QueueUrl=url, MessageBody='one',
                       MessageAttributes=ATTRS)
    assert r['MD5OfMessageAttributes'] == md5_attrs(ATTRS)
    assert r['MD5OfMessageBody'] == md5(b'one')
    r = c.send_message_batch(QueueUrl=url, Entries=[
        {'Id': 'b%d' % i, 'MessageBody': 'batch %d' % i} for i in range(10)])
    assert len(r['Successful']) == 10 and 'Failed' not in r
    got = c.receive_message(QueueUrl=url, MessageAttributeNames=['All'],
                            WaitTimeSeconds=1)['Messages']
    assert [(m['Body'], m['MessageAttributes']) for m in got] == \
        [('one', ATTRS)]
    ten = c.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                            WaitTimeSeconds=2)['Messages']
    assert [m['Body'] for m in ten] == ['batch %d' % i for i in range(10)]
    c.change_message_visibility(QueueUrl=url,
                                ReceiptHandle=got[0]['ReceiptHandle'],
                                VisibilityTimeout=0)
    again = c.receive_message(QueueUrl=url, WaitTimeSeconds=5)['Messages']
    assert again[0]['Body'] == 'one'
    c.delete_message(QueueUrl=url, ReceiptHandle=again[0]['ReceiptHandle'])
    r = c.delete_message_batch(QueueUrl=url, Entries=[
        {'Id': str(i), 'ReceiptHandle': m['ReceiptHandle']}
        for i, m in enumerate(ten)])
    assert len(r['Successful']) == 10
    c.set_queue_attributes(QueueUrl=url, Attributes={'DelaySeconds': '1'})
    a = c.get_queue_attributes(QueueUrl=url, AttributeNames=['All'])
    assert a['Attributes']['DelaySeconds'] == '1'
    assert a['Attributes']['ApproximateNumberOfMessages'] == '0'
    c.send_message(QueueUrl=url, MessageBody='purged', DelaySeconds=0)
    c.purge_queue(QueueUrl=url)
    assert stats(sqs.m.q())['visible'] == 0
    # redrive: the third lease that runs out sends it to the DLQ
    c.send_message(QueueUrl=url, MessageBody='poison', DelaySeconds=0)
    for _ in range(3):
        m = c.receive_message(QueueUrl=url, VisibilityTimeout=0,
                              WaitTimeSeconds=5)['Messages'][0]
        assert m['Body'] == 'poison'
    m = c.receive_message(QueueUrl=dlq, WaitTimeSeconds=20)['Messages'][0]
    assert m['Body'] == 'poison'
    # errors, as the SDK's own classes
    with pytest.raises(c.exceptions.QueueDoesNotExist) as e:
        c.send_message(QueueUrl=sqs.endpoint + '/000000000000/nope',
                       MessageBody='x')
    assert code(e) == 'AWS.SimpleQueueService.NonExistentQueue'
    with pytest.raises(c.exceptions.ReceiptHandleIsInvalid) as e:
        c.delete_message(QueueUrl=url, ReceiptHandle='not-a-handle')
    assert code(e) == 'ReceiptHandleIsInvalid'
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.receive_message(QueueUrl=url, WaitTimeSeconds=21)
    assert code(e) == 'InvalidParameterValue'
    c.delete_queue(QueueUrl=url)
    assert [u.rsplit('/', 1)[1] for u in c.list_queues()['QueueUrls']] == \
        ['dlq']


# ------------------------------------------------------------ start-up

def run_daemon(*args):
    tmp = Path(tempfile.mkdtemp(prefix='spoolfs-test-'))
    try:
        (tmp / 'mnt').mkdir()
        return subprocess.run(
            [str(BIN), '-f', '--data', str(tmp / 'data'), *args,
             str(tmp / 'mnt')], stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=30)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize('args, line', [
    (('--sqs', '10.1.2.3:9324'), 'refusing a non-loopback address without '
     '--sqs-keys'),
    (('--sqs', '0.0.0.0:9324'), 'refusing a non-loopback address'),
    (('--sqs', '127.0.0.1:http'), '--sqs takes [ADDR:]PORT'),
    (('--sqs', '99999'), '--sqs takes [ADDR:]PORT'),
    (('--sqs', '9324', '--sqs-keys', '/nonexistent'),
     '--sqs-keys /nonexistent: No such file or directory'),
])
def test_refused_at_start(args, line):
    r = run_daemon(*args)
    assert r.returncode == 1, r
    assert r.stderr.count('\n') == 1 and line in r.stderr, r.stderr


def test_mount_option_form(mount_factory):
    """-o sqs=PORT (an fstab line's options) is --sqs PORT."""
    sqs = Sqs(mount_factory('-o', 'sqs=0'))
    sqs.mkq()
    assert (sqs.m.mnt / 'jobs').is_dir()


def test_port_in_use_refused(sqs):
    r = run_daemon('--sqs', '127.0.0.1:%d' % sqs.port)
    assert r.returncode == 1
    assert 'cannot listen: Address already in use' in r.stderr, r.stderr


# -------------------------------------------------------------- queues

def test_queue_lifecycle(sqs):
    c = sqs.c
    url = sqs.mkq('jobs', VisibilityTimeout=40)
    assert url == sqs.endpoint + '/000000000000/jobs'
    assert (sqs.m.mnt / 'jobs').is_dir()
    assert sqs.m.config('jobs')['visibility_timeout'] == '40'
    # the same attributes again: the same URL; different ones: refused
    assert sqs.mkq('jobs', VisibilityTimeout=40) == url
    with pytest.raises(c.exceptions.QueueNameExists) as e:
        sqs.mkq('jobs', VisibilityTimeout=41)
    assert code(e) == 'QueueAlreadyExists'
    assert c.get_queue_url(QueueName='jobs')['QueueUrl'] == url
    for n in ('jobs2', 'other'):
        sqs.mkq(n)
    os.mkdir(sqs.m.mnt / 'made-by-mkdir')
    urls = c.list_queues()['QueueUrls']
    assert [u.rsplit('/', 1)[1] for u in urls] == \
        ['jobs', 'jobs2', 'made-by-mkdir', 'other']
    assert [u.rsplit('/', 1)[1] for u in
            c.list_queues(QueueNamePrefix='jobs')['QueueUrls']] == \
        ['jobs', 'jobs2']
    page = c.list_queues(MaxResults=2)
    assert len(page['QueueUrls']) == 2 and page['NextToken'] == 'jobs2'
    rest = c.list_queues(MaxResults=2, NextToken=page['NextToken'])
    assert [u.rsplit('/', 1)[1] for u in rest['QueueUrls']] == \
        ['made-by-mkdir', 'other']
    assert 'NextToken' not in rest
    assert 'QueueUrls' not in c.list_queues(QueueNamePrefix='zzz')
    # DeleteQueue takes messages in every state with it
    c.send_message(QueueUrl=url, MessageBody='leased')
    assert c.receive_message(QueueUrl=url)['Messages']
    c.send_message(QueueUrl=url, MessageBody='visible')
    c.send_message(QueueUrl=url, MessageBody='delayed', DelaySeconds=900)
    c.delete_queue(QueueUrl=url)
    assert 'jobs' not in os.listdir(sqs.m.mnt)
    with pytest.raises(c.exceptions.QueueDoesNotExist) as e:
        c.get_queue_url(QueueName='jobs')
    assert code(e) == 'AWS.SimpleQueueService.NonExistentQueue'
    with pytest.raises(c.exceptions.QueueDoesNotExist):
        c.delete_queue(QueueUrl=url)


def test_queue_names_and_fifo_refused(sqs):
    c = sqs.c
    for bad in ('a' * 81, 'has.dot', 'sp ace'):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            sqs.mkq(bad)
        assert code(e) == 'InvalidParameterValue', bad
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.mkq('jobs.fifo')
    assert code(e) == 'AWS.SimpleQueueService.UnsupportedOperation'
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.mkq('jobs', FifoQueue='true')
    assert code(e) == 'AWS.SimpleQueueService.UnsupportedOperation'
    assert 'QueueUrls' not in c.list_queues()


@pytest.mark.across_families(
    'a RedrivePolicy naming a queue of another family (EINVAL in a '
    'Cluster)')
def test_queue_attributes(sqs):
    c = sqs.c
    url = sqs.mkq()
    # a dead-letter target must exist, as on SQS
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.set_queue_attributes(QueueUrl=url, Attributes={
            'RedrivePolicy': json.dumps({
                'deadLetterTargetArn':
                    'arn:aws:sqs:us-east-1:000000000000:dlq',
                'maxReceiveCount': 4})})
    assert code(e) == 'InvalidAttributeValue'
    sqs.mkq('dlq')
    c.set_queue_attributes(QueueUrl=url, Attributes={
        'VisibilityTimeout': '12', 'DelaySeconds': '3',
        'MaximumMessageSize': '2048', 'MessageRetentionPeriod': '3600',
        'RedrivePolicy': json.dumps({
            'deadLetterTargetArn': 'arn:aws:sqs:us-east-1:000000000000:dlq',
            'maxReceiveCount': 4})})
    cfg = sqs.m.config('jobs')
    assert (cfg['visibility_timeout'], cfg['delay'], cfg['max_size'],
            cfg['retention'], cfg['max_receives'], cfg['dead_letter']) == \
        ('12', '3', '2048', '3600', '4', 'dlq')
    c.send_message(QueueUrl=url, MessageBody='a', DelaySeconds=0)
    c.send_message(QueueUrl=url, MessageBody='b')           # delay 3 s
    a = c.get_queue_attributes(QueueUrl=url, AttributeNames=['All'])
    a = a['Attributes']
    assert a['VisibilityTimeout'] == '12'
    assert a['DelaySeconds'] == '3'
    assert a['MaximumMessageSize'] == '2048'
    assert a['MessageRetentionPeriod'] == '3600'
    assert a['ReceiveMessageWaitTimeSeconds'] == '0'
    assert a['ApproximateNumberOfMessages'] == '1'
    assert a['ApproximateNumberOfMessagesDelayed'] == '1'
    assert a['ApproximateNumberOfMessagesNotVisible'] == '0'
    assert a['QueueArn'] == 'arn:aws:sqs:us-east-1:000000000000:jobs'
    assert json.loads(a['RedrivePolicy']) == {
        'deadLetterTargetArn': 'arn:aws:sqs:us-east-1:000000000000:dlq',
        'maxReceiveCount': 4}
    assert int(a['CreatedTimestamp']) > 1600000000
    one = c.get_queue_attributes(QueueUrl=url,
                                 AttributeNames=['VisibilityTimeout'])
    assert one['Attributes'] == {'VisibilityTimeout': '12'}
    for name, value, err in [
            ('VisibilityTimeout', '43201', 'InvalidAttributeValue'),
            ('DelaySeconds', 'x', 'InvalidAttributeValue'),
            ('Policy', '{}', 'InvalidAttributeName'),
            ('ReceiveMessageWaitTimeSeconds', '21', 'InvalidAttributeValue'),
            ('RedrivePolicy', '{"maxReceiveCount": 2}',
             'InvalidAttributeValue')]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.set_queue_attributes(QueueUrl=url, Attributes={name: value})
        assert code(e) == err, name
    assert sqs.m.config('jobs')['visibility_timeout'] == '12'
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.get_queue_attributes(QueueUrl=url, AttributeNames=['Nonsense'])
    assert code(e) == 'InvalidAttributeName'
    # kept with the queue (not a spool setting): the default wait of an
    # SQS receive, 0 unless set
    c.set_queue_attributes(QueueUrl=url, Attributes={
        'ReceiveMessageWaitTimeSeconds': '20'})
    a = c.get_queue_attributes(QueueUrl=url, AttributeNames=['All'])
    assert a['Attributes']['ReceiveMessageWaitTimeSeconds'] == '20'
    assert 'receive_wait' in sqs.m.config('jobs')   # the files' own: apart
    assert sqs.m.config('jobs')['receive_wait'] == 'inf'
    # CreatedTimestamp stays when a chmod moves the queue's ctime
    created = a['Attributes']['CreatedTimestamp']
    os.chmod(sqs.m.q(), 0o700)
    a = c.get_queue_attributes(QueueUrl=url, AttributeNames=['All'])
    assert a['Attributes']['CreatedTimestamp'] == created
    assert int(a['Attributes']['LastModifiedTimestamp']) >= int(created)
    # RedrivePolicy "" turns dead-lettering off
    c.set_queue_attributes(QueueUrl=url, Attributes={'RedrivePolicy': ''})
    assert sqs.m.config('jobs')['max_receives'] == '0'
    # (Query: an empty list is no element at all, so no key)
    assert c.list_dead_letter_source_queues(
        QueueUrl=sqs.mkq('dlq')).get('queueUrls', []) == []
    with pytest.raises(c.exceptions.QueueDoesNotExist):
        c.list_dead_letter_source_queues(QueueUrl=url + 'x')


# ------------------------------------------------------------- sending

ATTRS = {'colour': {'DataType': 'String', 'StringValue': 'red'},
         'n': {'DataType': 'Number', 'StringValue': '42'},
         'b': {'DataType': 'Binary', 'BinaryValue': b'\x00\x01'}}


def test_send_receive_with_attributes(sqs):
    c = sqs.c
    url = sqs.mkq()
    r = c.send_message(QueueUrl=url, MessageBody='hello',
                       MessageAttributes=ATTRS)
    assert r['MD5OfMessageBody'] == '5d41402abc4b2a76b9719d911017c592'
    assert r['MD5OfMessageAttributes'] == \
        '79cc5e09e0bc00cb415888ccd12bb770' == md5_attrs(ATTRS)
    mid = r['MessageId']
    assert mid in ids(sqs.m.q(), 'peek')
    # the attributes are the message's user.* xattrs
    peek = sqs.m.q() / 'peek' / mid
    assert os.getxattr(peek, 'user.colour') == b'red'
    assert os.getxattr(peek, 'user.b') == b'\x00\x01'
    got = c.receive_message(QueueUrl=url, AttributeNames=['All'],
                            MessageAttributeNames=['All'])['Messages']
    assert len(got) == 1
    m = got[0]
    assert (m['MessageId'], m['Body'], m['MD5OfBody']) == \
        (mid, 'hello', md5(b'hello'))
    assert m['MessageAttributes'] == ATTRS       # data types kept
    assert m['MD5OfMessageAttributes'] == md5_attrs(ATTRS)
    assert m['Attributes']['ApproximateReceiveCount'] == '1'
    assert int(m['Attributes']['SentTimestamp']) > 1600000000000
    assert int(m['Attributes']['ApproximateFirstReceiveTimestamp']) >= \
        int(m['Attributes']['SentTimestamp'])
    # the message is leased: leased/<MessageId> on the mount
    assert ids(sqs.m.q(), 'leased') == [mid]
    # filters: a prefix, one name, none
    c.change_message_visibility(QueueUrl=url, ReceiptHandle=m['ReceiptHandle'],
                                VisibilityTimeout=0)
    m = c.receive_message(QueueUrl=url, MessageAttributeNames=['colour'],
                          AttributeNames=['ApproximateReceiveCount'])
    m = m['Messages'][0]
    want = {'colour': ATTRS['colour']}
    assert m['MessageAttributes'] == want
    assert m['MD5OfMessageAttributes'] == md5_attrs(want)
    assert m['Attributes'] == {'ApproximateReceiveCount': '2'}
    c.change_message_visibility(QueueUrl=url, ReceiptHandle=m['ReceiptHandle'],
                                VisibilityTimeout=0)
    m = c.receive_message(QueueUrl=url)['Messages'][0]
    assert 'MessageAttributes' not in m and 'MD5OfMessageAttributes' not in m
    assert 'Attributes' not in m


def test_send_refusals(sqs):
    c = sqs.c
    url = sqs.mkq(MaximumMessageSize=1024)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.send_message(QueueUrl=url, MessageBody='x' * 1025)
    assert code(e) == 'InvalidParameterValue'
    assert 'shorter than 1025 bytes' in e.value.response['Error']['Message']
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.send_message(QueueUrl=url, MessageBody='bad \x01 char')
    assert code(e) == 'InvalidMessageContents'
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.send_message(QueueUrl=url, MessageBody='x', DelaySeconds=901)
    assert code(e) == 'InvalidParameterValue'
    for name in ('AWS.x', 'spool.encoding', '.dot', 'a..b'):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.send_message(QueueUrl=url, MessageBody='x', MessageAttributes={
                name: {'DataType': 'String', 'StringValue': 'v'}})
        assert code(e) == 'InvalidParameterValue', name
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.send_message(QueueUrl=url, MessageBody='x', MessageAttributes={
            'k%d' % i: {'DataType': 'String', 'StringValue': 'v'}
            for i in range(11)})
    assert code(e) == 'InvalidParameterValue'
    with pytest.raises(c.exceptions.QueueDoesNotExist):
        c.send_message(QueueUrl=url + 'x', MessageBody='x')
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.send_message(QueueUrl=url, MessageBody='x', MessageGroupId='g')
    assert code(e) == 'InvalidParameterValue'
    sqs.m.expect_log('.')   # nothing expected, but refusals are not errors
    assert stats(sqs.m.q())['pushed_total'] == 0


def test_send_batch(sqs):
    c = sqs.c
    url = sqs.mkq()
    entries = [{'Id': 'e%d' % i, 'MessageBody': 'body %d' % i}
               for i in range(9)]
    entries[3]['MessageAttributes'] = {'k': ATTRS['n']}
    entries.append({'Id': 'bad', 'MessageBody': 'nul \x00 here'})
    r = c.send_message_batch(QueueUrl=url, Entries=entries)
    assert [s['Id'] for s in r['Successful']] == ['e%d' % i for i in range(9)]
    assert all(s['MD5OfMessageBody'] == md5(('body %d' % i).encode())
               for i, s in enumerate(r['Successful']))
    assert r['Successful'][3]['MD5OfMessageAttributes'] == \
        md5_attrs({'k': ATTRS['n']})
    assert [(f['Id'], f['Code'], f['SenderFault']) for f in r['Failed']] == \
        [('bad', 'InvalidMessageContents', True)]
    mids = [s['MessageId'] for s in r['Successful']]
    assert len(set(mids)) == 9 and sorted(mids) == mids
    assert sorted(ids(sqs.m.q(), 'peek')) == mids
    # all ten come back in one receive
    got = c.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                            WaitTimeSeconds=1)['Messages']
    assert [m['Body'] for m in got] == ['body %d' % i for i in range(9)]
    for bad, err in [
            ([], 'AWS.SimpleQueueService.EmptyBatchRequest'),
            ([{'Id': 'x%d' % i, 'MessageBody': 'b'} for i in range(11)],
             'AWS.SimpleQueueService.TooManyEntriesInBatchRequest'),
            ([{'Id': 'a', 'MessageBody': 'b'}] * 2,
             'AWS.SimpleQueueService.BatchEntryIdsNotDistinct'),
            ([{'Id': 'a.b', 'MessageBody': 'b'}],
             'AWS.SimpleQueueService.InvalidBatchEntryId')]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.send_message_batch(QueueUrl=url, Entries=bad)
        assert code(e) == err


# ----------------------------------------------------------- receiving

def test_long_poll_woken_by_a_file_push(sqs):
    """A ReceiveMessage parked on an empty queue returns the message that
    echo writes: the engine's wake-up resumes it (without it, the call
    would run out its 20 s and return nothing)."""
    c = sqs.c
    url = sqs.mkq()
    out = {}

    def receive():
        out['r'] = sqs.client().receive_message(QueueUrl=url,
                                                WaitTimeSeconds=20)

    t = threading.Thread(target=receive)
    t.start()
    # nothing yet: an empty poll with a short wait returns no Messages
    assert 'Messages' not in c.receive_message(QueueUrl=url,
                                               WaitTimeSeconds=1)
    sqs.m.sh('echo woken > jobs/m1')
    t.join(60)
    assert not t.is_alive()
    assert [m['Body'] for m in out['r']['Messages']] == ['woken\n']


def test_queue_wait_applies_to_receive(sqs):
    """A queue's ReceiveMessageWaitTimeSeconds makes a receive without
    WaitTimeSeconds a long poll (woken by the file push below; without the
    wait it would return empty at once)."""
    setup = sqs.client()
    url = setup.create_queue(QueueName='jobs', Attributes={
        'ReceiveMessageWaitTimeSeconds': '20'})['QueueUrl']
    setup.close()       # so that the only connection left is the poller's
    poller = sqs.client()
    out = {}

    def receive():
        out['r'] = poller.receive_message(QueueUrl=url)

    t = threading.Thread(target=receive)
    t.start()
    assert wait_until(lambda: request_read(sqs.port), timeout=30)
    sqs.m.sh('echo late > jobs/m')
    t.join(60)
    assert [m['Body'] for m in out['r']['Messages']] == ['late\n']
    # the same attributes again: the same queue; another wait: refused
    assert sqs.mkq(ReceiveMessageWaitTimeSeconds=20) == url
    with pytest.raises(sqs.c.exceptions.QueueNameExists):
        sqs.mkq(ReceiveMessageWaitTimeSeconds=0)


def test_receive_ten_with_wait(sqs):
    c = sqs.c
    url = sqs.mkq()
    c.send_message_batch(QueueUrl=url, Entries=[
        {'Id': str(i), 'MessageBody': str(i)} for i in range(10)])
    got = c.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                            WaitTimeSeconds=5)['Messages']
    assert sorted(int(m['Body']) for m in got) == list(range(10))
    assert stats(sqs.m.q())['leased'] == 10
    for bad in ({'MaxNumberOfMessages': 11}, {'MaxNumberOfMessages': 0},
                {'WaitTimeSeconds': 21}, {'VisibilityTimeout': 43201}):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.receive_message(QueueUrl=url, **bad)
        assert code(e) == 'InvalidParameterValue', bad


def request_read(port):
    """True once a connection to port is established and the daemon has
    read every byte sent on it (both sides' queues empty)."""
    server = client = False
    for name in ('/proc/net/tcp', '/proc/net/tcp6'):
        with open(name) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                local, remote, state = fields[1], fields[2], fields[3]
                tx, rx = (int(x, 16) for x in fields[4].split(':'))
                if state != '01':
                    continue
                if int(local.split(':')[1], 16) == port:
                    server = server or rx == 0
                if int(remote.split(':')[1], 16) == port:
                    client = client or tx == 0
    return server and client


def test_unmount_answers_parked_polls(mount_factory):
    m = mount_factory('--sqs', '0')
    sqs = Sqs(m)
    m.mkq('jobs')      # no SQS connection but the poller's below
    url = sqs.endpoint + '/000000000000/jobs'
    poller = sqs.client()
    out = {}

    def receive():
        out['r'] = poller.receive_message(QueueUrl=url, WaitTimeSeconds=20)

    t = threading.Thread(target=receive)
    t.start()
    assert wait_until(lambda: request_read(sqs.port), timeout=30)
    # the poll is parked; the unmount must answer it (empty) and the daemon
    # still exit 0 (umount() asserts it)
    m.umount()
    t.join(60)
    assert not t.is_alive()
    assert 'r' in out and 'Messages' not in out['r']


# ---------------------------------------------------- visibility, delete

def test_visibility_and_stale_handles(sqs):
    c = sqs.c
    url = sqs.mkq()
    mid = c.send_message(QueueUrl=url, MessageBody='m')['MessageId']
    first = c.receive_message(QueueUrl=url, VisibilityTimeout=60)['Messages']
    h1 = first[0]['ReceiptHandle']
    # leased for 60 s by this receive: nothing more to receive
    assert 'Messages' not in c.receive_message(QueueUrl=url)
    # VisibilityTimeout=0 gives it back at once
    c.change_message_visibility(QueueUrl=url, ReceiptHandle=h1,
                                VisibilityTimeout=0)
    second = c.receive_message(QueueUrl=url, AttributeNames=['All'])
    second = second['Messages'][0]
    h2 = second['ReceiptHandle']
    assert second['MessageId'] == mid and h2 != h1
    assert second['Attributes']['ApproximateReceiveCount'] == '2'
    # the first receive's handle is stale: it changes nothing ...
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.change_message_visibility(QueueUrl=url, ReceiptHandle=h1,
                                    VisibilityTimeout=0)
    assert code(e) == 'AWS.SimpleQueueService.MessageNotInflight'
    # ... and deletes nothing (SQS: succeeds, "might not delete")
    c.delete_message(QueueUrl=url, ReceiptHandle=h1)
    assert ids(sqs.m.q(), 'leased') == [mid]
    # the current one extends the lease (visible on the mount) and deletes
    c.change_message_visibility(QueueUrl=url, ReceiptHandle=h2,
                                VisibilityTimeout=3600)
    assert 'Messages' not in c.receive_message(QueueUrl=url)
    c.delete_message(QueueUrl=url, ReceiptHandle=h2)
    assert ids(sqs.m.q(), 'leased') == []
    assert stats(sqs.m.q())['acked_total'] == 1
    # deleting again: idempotent
    c.delete_message(QueueUrl=url, ReceiptHandle=h2)
    for bad in ('bad', mid, mid + '.0', mid + '.x', mid + '.99999999999',
                '#' * 11 + '.1', ''):
        with pytest.raises(c.exceptions.ReceiptHandleIsInvalid) as e:
            c.delete_message(QueueUrl=url, ReceiptHandle=bad)
        assert code(e) == 'ReceiptHandleIsInvalid'
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.change_message_visibility(QueueUrl=url, ReceiptHandle='bad',
                                    VisibilityTimeout=0)
    assert code(e) == 'ReceiptHandleIsInvalid'


def test_batches_of_handles(sqs):
    c = sqs.c
    url = sqs.mkq()
    c.send_message_batch(QueueUrl=url, Entries=[
        {'Id': str(i), 'MessageBody': str(i)} for i in range(4)])
    got = c.receive_message(QueueUrl=url, MaxNumberOfMessages=4)['Messages']
    assert len(got) == 4
    r = c.change_message_visibility_batch(QueueUrl=url, Entries=[
        {'Id': 'a', 'ReceiptHandle': got[0]['ReceiptHandle'],
         'VisibilityTimeout': 0},
        {'Id': 'b', 'ReceiptHandle': 'garbage', 'VisibilityTimeout': 0}])
    assert [s['Id'] for s in r['Successful']] == ['a']
    assert [(f['Id'], f['Code'], f['SenderFault']) for f in r['Failed']] == \
        [('b', 'ReceiptHandleIsInvalid', True)]
    assert stats(sqs.m.q())['visible'] == 1
    r = c.delete_message_batch(QueueUrl=url, Entries=[
        {'Id': 'x%d' % i, 'ReceiptHandle': m['ReceiptHandle']}
        for i, m in enumerate(got[1:])] + [
        {'Id': 'bad', 'ReceiptHandle': 'nope'}])
    assert [s['Id'] for s in r['Successful']] == ['x0', 'x1', 'x2']
    assert [(f['Id'], f['Code']) for f in r['Failed']] == \
        [('bad', 'ReceiptHandleIsInvalid')]
    s = stats(sqs.m.q())
    assert (s['visible'], s['leased'], s['acked_total']) == (1, 0, 3)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.delete_message_batch(QueueUrl=url, Entries=[])
    assert code(e) == 'AWS.SimpleQueueService.EmptyBatchRequest'


def test_delete_batch_per_entry_results(sqs):
    """DeleteMessageBatch acks its entries in one engine write and reports
    each entry: a stale handle (the message was received again since)
    succeeds and deletes nothing, as SQS; a malformed one fails alone."""
    c = sqs.c
    url = sqs.mkq()
    for b in ('a', 'b', 'c'):
        c.send_message(QueueUrl=url, MessageBody=b)
    got = {m['Body']: m for m in c.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60,
        WaitTimeSeconds=2)['Messages']}
    assert sorted(got) == ['a', 'b', 'c']
    stale = got['b']['ReceiptHandle']
    c.change_message_visibility(QueueUrl=url, ReceiptHandle=stale,
                                VisibilityTimeout=0)
    again = c.receive_message(QueueUrl=url, VisibilityTimeout=60)
    assert again['Messages'][0]['Body'] == 'b'
    r = c.delete_message_batch(QueueUrl=url, Entries=[
        {'Id': 'a', 'ReceiptHandle': got['a']['ReceiptHandle']},
        {'Id': 'bad', 'ReceiptHandle': 'not-a-handle'},
        {'Id': 'stale', 'ReceiptHandle': stale},
        {'Id': 'c', 'ReceiptHandle': got['c']['ReceiptHandle']},
        {'Id': 'again', 'ReceiptHandle': got['c']['ReceiptHandle']}])
    assert [e['Id'] for e in r['Successful']] == ['a', 'stale', 'c', 'again']
    assert [(f['Id'], f['Code'], f['SenderFault']) for f in r['Failed']] == \
        [('bad', 'ReceiptHandleIsInvalid', True)]
    s = stats(sqs.m.q())
    assert (s['leased'], s['acked_total']) == (1, 2)
    # the current handle of b still deletes it
    r = c.delete_message_batch(QueueUrl=url, Entries=[
        {'Id': 'b', 'ReceiptHandle': again['Messages'][0]['ReceiptHandle']}])
    assert [e['Id'] for e in r['Successful']] == ['b'] and \
        'Failed' not in r
    assert stats(sqs.m.q())['acked_total'] == 3


def test_sender_id(mount_factory):
    """SenderId is who sent the message: the local uid over loopback, the
    pushing uid for a file push (DESIGN §11); never a listed xattr."""
    sqs = Sqs(mount_factory('--sqs', '0', '-o', 'allow_other'))
    c = sqs.c
    url = sqs.mkq()
    q = sqs.m.q()
    os.chmod(sqs.m.tmp, 0o755)      # the other user reaches the mount
    os.chmod(q, 0o777)
    c.send_message(QueueUrl=url, MessageBody='boto3 as root')
    c.send_message_batch(QueueUrl=url, Entries=[
        {'Id': '1', 'MessageBody': 'batch as root'}])
    subprocess.run(['sh', '-c', 'echo shell-root > "$1/push"', 'sh', str(q)],
                   check=True)
    subprocess.run(['setpriv', '--reuid=65534', '--regid=65534',
                    '--clear-groups', 'sh', '-c',
                    'echo shell-nobody > "$1/push"', 'sh', str(q)],
                   check=True, cwd='/')
    out = as_nobody(sqs, 'c.send_message(QueueUrl=url, '
                    'MessageBody="boto3 as nobody")\nprint("sent")\n')
    assert out.split() == ['sent']
    # a listing of xattrs shows no system attribute
    for i in ids(q):
        assert 'sys.sender' not in os.listxattr(q / 'peek' / i)
    want = {'boto3 as root': str(os.getuid()),
            'batch as root': str(os.getuid()),
            'shell-root\n': str(os.getuid()),
            'shell-nobody\n': '65534',
            'boto3 as nobody': '65534'}
    for names in (['SenderId'], ['All']):
        seen, handles = {}, []
        for _ in range(20):
            if len(seen) == len(want):
                break
            for m in c.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10,
                    AttributeNames=names, VisibilityTimeout=60,
                    WaitTimeSeconds=1).get('Messages', []):
                seen[m['Body']] = m['Attributes']['SenderId']
                handles.append(m['ReceiptHandle'])
        assert seen == want
        c.change_message_visibility_batch(QueueUrl=url, Entries=[
            {'Id': str(i), 'ReceiptHandle': h, 'VisibilityTimeout': 0}
            for i, h in enumerate(handles)])
    # not asked for: not given
    got = c.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                            VisibilityTimeout=0)['Messages']
    assert all('Attributes' not in m for m in got)


def test_dedup_returns_the_kept_message_id(sqs):
    """With dedup set through config, a dropped send returns the MessageId
    of the message kept for that body, as FIFO SQS returns the original."""
    from spoolutil import set_config
    c = sqs.c
    url = sqs.mkq()
    q = sqs.m.q()
    set_config(q, dedup='content', dedup_window=600)
    first = c.send_message(QueueUrl=url, MessageBody='same')['MessageId']
    again = c.send_message(QueueUrl=url, MessageBody='same')['MessageId']
    assert again == first and first != '0' * 11
    # a body pushed through the files first: its id comes back
    subprocess.run(['sh', '-c', 'printf from-file > "$1/push"', 'sh', str(q)],
                   check=True)
    (file_id,) = [i for i in ids(q) if i != first]
    assert c.send_message(QueueUrl=url,
                          MessageBody='from-file')['MessageId'] == file_id
    # in a batch: a duplicate within it and one of an earlier send
    r = c.send_message_batch(QueueUrl=url, Entries=[
        {'Id': 'n', 'MessageBody': 'new'},
        {'Id': 'n2', 'MessageBody': 'new'},
        {'Id': 's', 'MessageBody': 'same'}])
    got = {e['Id']: e['MessageId'] for e in r['Successful']}
    assert got['n2'] == got['n'] and got['s'] == first
    assert got['n'] not in (first, file_id)
    assert sorted(ids(q)) == sorted([first, file_id, got['n']])
    assert stats(q)['deduped_total'] == 4


def test_purge_takes_leased_too(sqs):
    c = sqs.c
    url = sqs.mkq()
    for b in ('a', 'b', 'c'):
        c.send_message(QueueUrl=url, MessageBody=b)
    c.send_message(QueueUrl=url, MessageBody='d', DelaySeconds=600)
    assert c.receive_message(QueueUrl=url)['Messages']
    s = stats(sqs.m.q())
    assert (s['visible'], s['leased'], s['delayed']) == (2, 1, 1)
    c.purge_queue(QueueUrl=url)
    s = stats(sqs.m.q())
    assert (s['visible'], s['leased'], s['delayed']) == (0, 0, 0)
    with pytest.raises(c.exceptions.QueueDoesNotExist):
        c.purge_queue(QueueUrl=url + 'x')


@pytest.mark.across_families(
    'a RedrivePolicy naming a queue of another family (EINVAL in a '
    'Cluster)')
def test_redrive_to_dead_letter_queue(sqs):
    c = sqs.c
    dlq = sqs.mkq('jobs-dlq')
    url = sqs.mkq('jobs', RedrivePolicy=json.dumps({
        'deadLetterTargetArn': 'arn:aws:sqs:us-east-1:000000000000:jobs-dlq',
        'maxReceiveCount': '2'}))
    c.send_message(QueueUrl=url, MessageBody='poison')
    for _ in range(2):
        m = c.receive_message(QueueUrl=url, VisibilityTimeout=0,
                              WaitTimeSeconds=5)['Messages'][0]
        assert m['Body'] == 'poison'
    # the second lease was its last: it goes to the dead-letter queue when
    # that lease runs out (at once, VisibilityTimeout=0)
    m = c.receive_message(QueueUrl=dlq, WaitTimeSeconds=20)['Messages'][0]
    assert m['Body'] == 'poison'
    assert 'Messages' not in c.receive_message(QueueUrl=url)
    assert c.list_dead_letter_source_queues(QueueUrl=dlq)['queueUrls'] == \
        [url]


# -------------------------------------------------- shell and SQS mixed

def test_boto3_send_then_cat_next(sqs):
    c = sqs.c
    url = sqs.mkq()
    mid = c.send_message(QueueUrl=url, MessageBody='from boto3',
                         MessageAttributes={'colour': ATTRS['colour']})
    mid = mid['MessageId']
    r = sqs.m.sh('cat jobs/next')
    assert r.stdout == b'from boto3'
    assert ids(sqs.m.q(), 'leased') == [mid]
    r = sqs.m.sh('getfattr --only-values -n user.colour jobs/leased/' + mid)
    assert r.stdout == b'red'


def test_echo_then_boto3_receive_text_and_binary(sqs):
    c = sqs.c
    url = sqs.mkq()
    sqs.m.sh("echo 'hello from the shell' > jobs/a")
    sqs.m.sh("printf 'bin\\377\\000\\001' > jobs/b")
    sqs.m.sh("printf '' > jobs/empty")
    got = c.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                            MessageAttributeNames=['All'])['Messages']
    assert len(got) == 3
    text, binary, empty = got
    assert text['Body'] == 'hello from the shell\n'
    assert text['MD5OfBody'] == md5(b'hello from the shell\n')
    assert 'MessageAttributes' not in text
    raw = b'bin\xff\x00\x01'
    assert base64.b64decode(binary['Body']) == raw
    assert binary['MD5OfBody'] == md5(binary['Body'].encode())
    enc = {'spool.encoding': {'DataType': 'String', 'StringValue': 'base64'}}
    assert binary['MessageAttributes'] == enc
    assert binary['MD5OfMessageAttributes'] == md5_attrs(enc)
    # an empty body goes out as "" (SDKs accept its MD5)
    assert empty['Body'] == '' and 'MessageAttributes' not in empty
    assert empty['MD5OfBody'] == 'd41d8cd98f00b204e9800998ecf8427e'


def test_claim_lease_invisible_to_receive(sqs):
    c = sqs.c
    url = sqs.mkq()
    c.send_message(QueueUrl=url, MessageBody='one')
    mid = claim(sqs.m.q())
    assert mid
    assert 'Messages' not in c.receive_message(QueueUrl=url,
                                                WaitTimeSeconds=1)
    # given back through the mount (rm of leased/<id> acks; touch with a
    # past time releases): now SQS gets it
    os.utime(sqs.m.q() / 'leased' / mid, (0, 0))
    m = c.receive_message(QueueUrl=url, WaitTimeSeconds=5)['Messages'][0]
    assert (m['MessageId'], m['Body']) == (mid, 'one')


def test_files_xattrs_become_message_attributes(sqs):
    c = sqs.c
    url = sqs.mkq()
    q = sqs.m.q()
    draft = q / '.d1'
    draft.write_bytes(b'with xattrs')
    os.setxattr(draft, 'user.colour', b'blue')
    os.setxattr(draft, 'user.raw', b'\xff\xfe')
    os.rename(draft, q / 'd1')
    m = c.receive_message(QueueUrl=url,
                          MessageAttributeNames=['All'])['Messages'][0]
    want = {'colour': {'DataType': 'String', 'StringValue': 'blue'},
            'raw': {'DataType': 'Binary', 'BinaryValue': b'\xff\xfe'}}
    assert m['MessageAttributes'] == want
    assert m['MD5OfMessageAttributes'] == md5_attrs(want)


# ------------------------------------------------------ errors, actions

def test_actions_not_built_refused(sqs):
    c = sqs.c
    url = sqs.mkq()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.tag_queue(QueueUrl=url, Tags={'a': 'b'})
    assert code(e) == 'AWS.SimpleQueueService.UnsupportedOperation'
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.add_permission(QueueUrl=url, Label='l', AWSAccountIds=['1'],
                         Actions=['SendMessage'])
    assert code(e) == 'AWS.SimpleQueueService.UnsupportedOperation'
    st, h, body = sqs.raw('Action=Frobnicate&Version=2012-11-05', {
        'Content-Type': 'application/x-www-form-urlencoded'})
    assert st == 400 and b'<Code>InvalidAction</Code>' in body
    assert b'<Type>Sender</Type>' in body and h['content-type'] == 'text/xml'


def test_query_queue_from_path_and_xml_escaping(sqs):
    """Clients that POST to the QueueUrl itself (Java v1, Perl) leave out
    QueueUrl; bodies with & < > " and \\r survive the XML."""
    sqs.mkq()
    body = 'a&b<c>"d"\r\n'
    st, _, _ = sqs.raw(
        'Action=SendMessage&MessageBody=a%26b%3Cc%3E%22d%22%0D%0A',
        {'Content-Type': 'application/x-www-form-urlencoded'},
        path='/000000000000/jobs')
    assert st == 200
    m = sqs.c.receive_message(QueueUrl=sqs.endpoint + '/000000000000/jobs')
    m = m['Messages'][0]
    assert m['Body'] == body and m['MD5OfBody'] == md5(body.encode())


def test_query_over_get_and_oversized_bodies(sqs):
    """The Query protocol in a GET's URL (curl), and a body over the
    limit refused with an SQS error, not a dropped connection."""
    sqs.mkq()
    r = subprocess.run(['curl', '-sS', sqs.endpoint + '/?Action=GetQueueUrl'
                        '&QueueName=jobs'], capture_output=True,
                       timeout=60)
    assert r.returncode == 0 and \
        b'<QueueUrl>%s/000000000000/jobs</QueueUrl>' % \
        sqs.endpoint.encode() in r.stdout
    st, _, body = sqs.raw(b'Action=ListQueues&x=' + b'a' * (13 << 20), {
        'Content-Type': 'application/x-www-form-urlencoded'})
    assert st == 400 and b'<Code>InvalidParameterValue</Code>' in body
    st, _, body = sqs.raw('[' * 100000 + ']' * 100000, {
        'Content-Type': 'application/x-amz-json-1.0',
        'X-Amz-Target': 'AmazonSQS.ListQueues'})
    assert st == 400


def test_json_protocol_shapes(sqs):
    """AWS JSON 1.0 (what current SDKs send), checked on the wire."""
    st, h, out = sqs.json('CreateQueue', {'QueueName': 'jobs'})
    assert st == 200 and out == {
        'QueueUrl': sqs.endpoint + '/000000000000/jobs'}
    assert h['x-amzn-requestid']
    url = out['QueueUrl']
    st, _, out = sqs.json('SendMessage', {
        'QueueUrl': url, 'MessageBody': 'hello', 'MessageAttributes': {
            'colour': {'DataType': 'String', 'StringValue': 'red'},
            'n': {'DataType': 'Number', 'StringValue': '42'},
            'b': {'DataType': 'Binary', 'BinaryValue': 'AAE='}}})
    assert st == 200
    assert out['MD5OfMessageBody'] == md5(b'hello')
    assert out['MD5OfMessageAttributes'] == '79cc5e09e0bc00cb415888ccd12bb770'
    st, _, out = sqs.json('SendMessageBatch', {'QueueUrl': url, 'Entries': [
        {'Id': 'a', 'MessageBody': 'x', 'DelaySeconds': 0},
        {'Id': 'b', 'MessageBody': 'y'}]})
    assert [e['Id'] for e in out['Successful']] == ['a', 'b']
    assert 'Failed' not in out
    st, _, out = sqs.json('ReceiveMessage', {
        'QueueUrl': url, 'MaxNumberOfMessages': 10, 'WaitTimeSeconds': 1,
        'MessageAttributeNames': ['All'],
        'MessageSystemAttributeNames': ['ApproximateReceiveCount']})
    msgs = out['Messages']
    assert [m['Body'] for m in msgs] == ['hello', 'x', 'y']
    assert msgs[0]['MessageAttributes']['b'] == {'BinaryValue': 'AAE=',
                                                 'DataType': 'Binary'}
    assert msgs[0]['Attributes'] == {'ApproximateReceiveCount': '1'}
    st, _, out = sqs.json('DeleteMessageBatch', {'QueueUrl': url, 'Entries': [
        {'Id': str(i), 'ReceiptHandle': m['ReceiptHandle']}
        for i, m in enumerate(msgs)]})
    assert [e['Id'] for e in out['Successful']] == ['0', '1', '2']
    # nothing to receive: {} (no empty Messages list)
    st, _, out = sqs.json('ReceiveMessage', {'QueueUrl': url})
    assert (st, out) == (200, {})
    st, _, out = sqs.json('GetQueueAttributes', {
        'QueueUrl': url, 'AttributeNames': ['ApproximateNumberOfMessages']})
    assert out == {'Attributes': {'ApproximateNumberOfMessages': '0'}}
    st, _, out = sqs.json('SetQueueAttributes', {
        'QueueUrl': url, 'Attributes': {'VisibilityTimeout': '7'}})
    assert (st, out) == (200, {})
    assert sqs.m.config('jobs')['visibility_timeout'] == '7'
    # errors: the shape in __type, the Query code in x-amzn-query-error
    st, h, out = sqs.json('GetQueueUrl', {'QueueName': 'nope'})
    assert st == 400
    assert out == {'__type': 'com.amazonaws.sqs#QueueDoesNotExist',
                   'message': 'The specified queue does not exist.'}
    assert h['x-amzn-query-error'] == \
        'AWS.SimpleQueueService.NonExistentQueue;Sender'
    st, h, out = sqs.json('DeleteMessage', {'QueueUrl': url,
                                            'ReceiptHandle': 'x'})
    assert (st, out['__type']) == (400,
                                   'com.amazonaws.sqs#ReceiptHandleIsInvalid')
    assert h['x-amzn-query-error'] == 'ReceiptHandleIsInvalid;Sender'
    st, h, out = sqs.raw('{not json', {
        'Content-Type': 'application/x-amz-json-1.0',
        'X-Amz-Target': 'AmazonSQS.ListQueues'})
    assert st == 400
    assert h['x-amzn-query-error'] == 'InvalidParameterValue;Sender'
    st, _, out = sqs.json('ListQueues', {})
    assert out == {'QueueUrls': [url]}
    st, _, out = sqs.json('DeleteQueue', {'QueueUrl': url})
    assert (st, out) == (200, {})


# ------------------------------------------------------------ identity

def as_nobody(sqs, code_):
    """Runs code_ with boto3 as uid/gid 65534; returns its stdout."""
    prog = ('import boto3, botocore, sys\n'
            'from botocore.config import Config\n'
            'c = boto3.client("sqs", endpoint_url=%r, region_name="us-east-1",'
            ' aws_access_key_id="x", aws_secret_access_key="y",'
            ' config=Config(retries={"max_attempts": 1}))\n'
            'url = %r\n' % (sqs.endpoint, sqs.endpoint + '/000000000000/jobs')
            + code_)
    r = subprocess.run(['setpriv', '--reuid=65534', '--regid=65534',
                        '--clear-groups', '/usr/bin/python3', '-c', prog],
                       capture_output=True, text=True, timeout=60,
                       cwd='/')
    assert r.returncode == 0, r.stderr
    return r.stdout


TRY = ('def t(f, **kw):\n'
       '    try:\n'
       '        f(**kw)\n'
       '        print("ok")\n'
       '    except botocore.exceptions.ClientError as e:\n'
       '        print(e.response["Error"]["Code"])\n')


def test_other_user_refused_without_allow_other(sqs):
    sqs.mkq()
    out = as_nobody(sqs, TRY + 't(c.get_queue_url, QueueName="jobs")\n'
                    't(c.send_message, QueueUrl=url, MessageBody="x")\n')
    assert out.split() == ['AccessDenied', 'AccessDenied']
    assert stats(sqs.m.q())['pushed_total'] == 0


def test_other_user_gets_the_mode_rules_with_allow_other(mount_factory):
    sqs = Sqs(mount_factory('--sqs', '0', '-o', 'allow_other'))
    sqs.mkq()   # root's, mode 0755
    sqs.c.send_message(QueueUrl=sqs.endpoint + '/000000000000/jobs',
                       MessageBody='x')
    out = as_nobody(sqs, TRY + 't(c.get_queue_attributes, QueueUrl=url, '
                    'AttributeNames=["All"])\n'
                    't(c.send_message, QueueUrl=url, MessageBody="x")\n'
                    't(c.receive_message, QueueUrl=url)\n'
                    't(c.purge_queue, QueueUrl=url)\n'
                    't(c.create_queue, QueueName="mine")\n')
    assert out.split() == ['ok', 'AccessDenied', 'AccessDenied',
                           'AccessDenied', 'AccessDenied']
    # as for files: a mode that lets others write lets them send
    os.chmod(sqs.m.q(), 0o777)
    out = as_nobody(sqs, TRY + 't(c.send_message, QueueUrl=url, '
                    'MessageBody="from nobody")\n'
                    't(c.receive_message, QueueUrl=url)\n')
    assert out.split() == ['ok', 'ok']
    assert stats(sqs.m.q())['pushed_total'] == 2


# ------------------------------------------------------------- the AWS CLI

AWS = '/usr/bin/aws'     # Debian's awscli (v2, Query), not one on PATH


def aws(sqs, tmp_path, *args, ok=True):
    """Runs Debian's aws sqs ARGS against the endpoint; returns
    (exit status, parsed JSON output or None, stderr)."""
    env = dict(os.environ, HOME=str(tmp_path), AWS_ACCESS_KEY_ID='x',
               AWS_SECRET_ACCESS_KEY='y', AWS_DEFAULT_REGION='us-east-1',
               AWS_PAGER='', AWS_CONFIG_FILE=str(tmp_path / 'none'),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / 'none'))
    r = subprocess.run([AWS, '--endpoint-url', sqs.endpoint, '--output',
                        'json', 'sqs', *args], env=env, capture_output=True,
                       text=True, timeout=120, stdin=subprocess.DEVNULL)
    if ok:
        assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout) if r.stdout.strip() else None
    return r.returncode, out, r.stderr


@pytest.mark.spool_timeout(600)     # each aws run takes a few seconds
def test_aws_cli(sqs, tmp_path):
    assert os.access(AWS, os.X_OK), 'apt-get install awscli'
    _, out, _ = aws(sqs, tmp_path, 'create-queue', '--queue-name', 'jobs',
                    '--attributes', 'VisibilityTimeout=45')
    url = out['QueueUrl']
    assert url == sqs.endpoint + '/000000000000/jobs'
    _, out, _ = aws(sqs, tmp_path, 'send-message', '--queue-url', url,
                    '--message-body', 'from the cli',
                    '--message-attributes',
                    json.dumps({'colour': {'DataType': 'String',
                                           'StringValue': 'red'}}))
    assert out['MD5OfMessageBody'] == md5(b'from the cli')
    assert out['MD5OfMessageAttributes'] == md5_attrs(
        {'colour': {'DataType': 'String', 'StringValue': 'red'}})
    assert sqs.m.sh('cat jobs/next').stdout == b'from the cli'
    sqs.m.sh('echo from the shell > jobs/x')
    _, out, _ = aws(sqs, tmp_path, 'send-message-batch', '--queue-url', url,
                    '--entries', json.dumps([
                        {'Id': 'a', 'MessageBody': 'batch a'},
                        {'Id': 'b', 'MessageBody': 'batch b'}]))
    assert [e['Id'] for e in out['Successful']] == ['a', 'b']
    _, out, _ = aws(sqs, tmp_path, 'receive-message', '--queue-url', url,
                    '--max-number-of-messages', '10', '--wait-time-seconds',
                    '1', '--attribute-names', 'All',
                    '--message-attribute-names', 'All')
    msgs = out['Messages']
    assert [m['Body'] for m in msgs] == ['from the shell\n', 'batch a',
                                         'batch b']
    aws(sqs, tmp_path, 'change-message-visibility', '--queue-url', url,
        '--receipt-handle', msgs[0]['ReceiptHandle'],
        '--visibility-timeout', '0')
    _, out, _ = aws(sqs, tmp_path, 'receive-message', '--queue-url', url,
                    '--wait-time-seconds', '5')
    again = out['Messages'][0]
    assert again['Body'] == 'from the shell\n'
    aws(sqs, tmp_path, 'delete-message', '--queue-url', url,
        '--receipt-handle', again['ReceiptHandle'])
    _, out, _ = aws(sqs, tmp_path, 'delete-message-batch', '--queue-url', url,
                    '--entries', json.dumps([
                        {'Id': str(i), 'ReceiptHandle': m['ReceiptHandle']}
                        for i, m in enumerate(msgs[1:])]))
    assert [e['Id'] for e in out['Successful']] == ['0', '1']
    aws(sqs, tmp_path, 'set-queue-attributes', '--queue-url', url,
        '--attributes', 'DelaySeconds=2')
    _, out, _ = aws(sqs, tmp_path, 'get-queue-attributes', '--queue-url', url,
                    '--attribute-names', 'All')
    assert out['Attributes']['DelaySeconds'] == '2'
    assert out['Attributes']['VisibilityTimeout'] == '45'
    aws(sqs, tmp_path, 'send-message', '--queue-url', url, '--message-body',
        'x')
    aws(sqs, tmp_path, 'purge-queue', '--queue-url', url)
    assert stats(sqs.m.q())['delayed'] == 0
    st, _, err = aws(sqs, tmp_path, 'get-queue-url', '--queue-name', 'nope',
                     ok=False)
    assert st != 0 and 'AWS.SimpleQueueService.NonExistentQueue' in err
    st, _, err = aws(sqs, tmp_path, 'delete-message', '--queue-url', url,
                     '--receipt-handle', 'nope', ok=False)
    assert st != 0 and 'ReceiptHandleIsInvalid' in err
    _, out, _ = aws(sqs, tmp_path, 'list-queues')
    assert out['QueueUrls'] == [url]
    aws(sqs, tmp_path, 'delete-queue', '--queue-url', url)
    _, out, _ = aws(sqs, tmp_path, 'list-queues')
    assert out is None or 'QueueUrls' not in out


# ------------------------------------------- the AWS SDK for JavaScript v3

JS = Path(__file__).resolve().parents[1] / 'sqs-js'


@pytest.mark.spool_timeout(300)
@pytest.mark.parametrize('protocol', ['json', 'query'])
def test_js_sdk(sqs, protocol):
    """@aws-sdk/client-sqs 3.1175.0 (JSON 1.0) and 3.445.0 (Query), pinned
    by tests/sqs-js/*/package-lock.json (tools/test runs npm ci): the SDK
    checks every body MD5 itself and names its errors by class."""
    d = JS / protocol
    assert (d / 'node_modules' / '@aws-sdk' / 'client-sqs').is_dir(), \
        'run: (cd %s && npm ci)' % d
    r = subprocess.run(['node', str(JS / 'client.cjs'), str(d)],
                       env=dict(os.environ, SQS_ENDPOINT=sqs.endpoint),
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ['ok', protocol]


# --------------------------------------------------- keys file and SigV4

def keys_file(tmp_path, text, mode=0o600):
    f = tmp_path / 'keys'
    f.write_text(text)
    f.chmod(mode)
    return str(f)


def test_keys_file_refused_at_start(tmp_path):
    for text, mode, line in [
            ('AK SECRET root\n', 0o644, 'readable by others (chmod 600 it)'),
            ('AK SECRET\n', 0o600, 'line 1: not "ACCESS_KEY SECRET USER"'),
            ('AK SECRET no-such-user-here\n', 0o600, 'line 1:'),
            ('# nothing\n', 0o600, 'no keys in it')]:
        r = run_daemon('--sqs', '0', '--sqs-keys',
                       keys_file(tmp_path, text, mode))
        assert r.returncode == 1, r
        assert r.stderr.count('\n') == 1 and line in r.stderr, r.stderr


@pytest.mark.parametrize('protocol', ['query', 'json'])
def test_keys_file_sigv4(mount_factory, tmp_path, protocol):
    """With --sqs-keys every request is signed with a key of the file and
    served as its user; any address may then be bound."""
    keys = keys_file(tmp_path, '# access secret user\n'
                     'ROOTKEY s3cret/with+chars root\n'
                     'NOBODYKEY other 65534\n')
    sqs = Sqs(mount_factory('--sqs', '0.0.0.0:0', '--sqs-keys', keys,
                            '-o', 'allow_other'))
    assert 'serving SQS on http://0.0.0.0:' in sqs.m.log()
    model = json_model(tmp_path / 'model') if protocol == 'json' else None
    root = sqs.client(model, key=('ROOTKEY', 's3cret/with+chars'))
    assert root.meta.service_model.protocol == protocol
    url = root.create_queue(QueueName='jobs')['QueueUrl']
    root.send_message(QueueUrl=url, MessageBody='signed',
                      MessageAttributes={'colour': ATTRS['colour']})
    m = root.receive_message(QueueUrl=url, MessageAttributeNames=['All'],
                             AttributeNames=['All'],
                             WaitTimeSeconds=1)['Messages'][0]
    assert m['Body'] == 'signed'
    # SenderId: the access key id the send was signed with
    assert m['Attributes']['SenderId'] == 'ROOTKEY'
    root.delete_message(QueueUrl=url, ReceiptHandle=m['ReceiptHandle'])
    assert os.stat(sqs.m.q()).st_uid == 0
    for key, err in [(('ROOTKEY', 'wrong'), 'SignatureDoesNotMatch'),
                     (('NOKEY', 'x'), 'InvalidClientTokenId')]:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            sqs.client(model, key=key).list_queues()
        assert code(e) == err
        assert e.value.response['ResponseMetadata']['HTTPStatusCode'] == 403
    # served as the key's user (nobody), whoever connects: the mode rules
    nobody = sqs.client(model, key=('NOBODYKEY', 'other'))
    a = nobody.get_queue_attributes(QueueUrl=url, AttributeNames=['All'])
    assert a['Attributes']['ApproximateNumberOfMessages'] == '0'
    with pytest.raises(botocore.exceptions.ClientError) as e:
        nobody.send_message(QueueUrl=url, MessageBody='x')
    assert code(e) == 'AccessDenied'
    # unsigned: refused
    st, _, body = sqs.raw('Action=ListQueues', {
        'Content-Type': 'application/x-www-form-urlencoded'})
    assert st == 403 and b'MissingAuthenticationToken' in body


def test_keys_file_without_allow_other_serves_the_owner_only(mount_factory,
                                                            tmp_path):
    keys = keys_file(tmp_path, 'ROOTKEY a root\nNOBODYKEY b 65534\n')
    sqs = Sqs(mount_factory('--sqs', '0', '--sqs-keys', keys))
    sqs.client(key=('ROOTKEY', 'a')).create_queue(QueueName='jobs')
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sqs.client(key=('NOBODYKEY', 'b')).list_queues()
    assert code(e) == 'AccessDenied'


def test_a_receive_and_delete_after_ls_l_are_seen_at_once(sqs):
    """The kernel keeps the entries `ls -l` listed (READDIRPLUS); a
    ReceiveMessage or DeleteMessage of the endpoint tells it to look them
    up again before it answers, as a file operation does."""
    c = sqs.c
    url = sqs.mkq()
    a = c.send_message(QueueUrl=url, MessageBody='a')['MessageId']
    q = sqs.m.q()
    r = subprocess.run(['ls', '-l', str(q / 'peek')], capture_output=True,
                       check=True)
    assert a.encode() in r.stdout
    m = c.receive_message(QueueUrl=url)['Messages'][0]
    assert m['MessageId'] == a
    assert not os.path.exists(q / 'peek' / a)
    r = subprocess.run(['ls', '-l', str(q / 'leased')], capture_output=True,
                       check=True)
    assert a.encode() in r.stdout
    c.delete_message(QueueUrl=url, ReceiptHandle=m['ReceiptHandle'])
    assert not os.path.exists(q / 'leased' / a)
    assert stats(q)['acked_total'] == 1
