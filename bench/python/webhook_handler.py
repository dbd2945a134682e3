"""Baseline for the init-time benchmark: the webhook's job in Python with boto3, as a
typical Python Lambda would do it (clients built at import time).

Verifies X-Hub-Signature-256, claims the delivery id in DynamoDB (conditional put),
creates the run item for (repository, commit) if absent, sends the trigger to the advance
queue (FIFO, group = run id), completes the idempotency record, answers 201/200.
"""
import base64
import hashlib
import hmac
import json
import os
import time

import boto3

_endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
DYNAMODB = boto3.client("dynamodb", endpoint_url=_endpoint)
SQS = boto3.client("sqs", endpoint_url=_endpoint)
TABLE = os.environ["VAIA_TABLE"]
PREFIX = os.environ.get("VAIA_QUEUE_PREFIX", "")
SECRET = os.environ["VAIA_WEBHOOK_SECRET"].encode()
_queue_url = None


def _answer(status, body):
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(body)}


def handler(event, _context):
    global _queue_url
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    expected = "sha256=" + hmac.new(SECRET, raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, headers.get("x-hub-signature-256", "")):
        return _answer(401, {"status": "error", "error": "signature"})
    delivery = headers.get("x-github-delivery", "")
    now = int(time.time())
    try:
        DYNAMODB.put_item(
            TableName=TABLE,
            Item={"pk": {"S": f"IDEM#webhook:{delivery}"}, "sk": {"S": "IDEM"},
                  "status": {"S": "in_progress"}, "until_ms": {"N": str((now + 30) * 1000)}},
            ConditionExpression="attribute_not_exists(pk)",
        )
    except DYNAMODB.exceptions.ConditionalCheckFailedException:
        return _answer(409, {"status": "in_progress"})
    payload = json.loads(raw)
    if headers.get("x-github-event") != "push":
        return _answer(200, {"status": "ignored"})
    repo = payload["repository"]["full_name"]
    commit = payload["after"]
    run_id = "r" + hashlib.sha256(f"{repo}@{commit}".encode()).hexdigest()[:24]
    status = 201
    try:
        DYNAMODB.put_item(
            TableName=TABLE,
            Item={"pk": {"S": f"RUN#{run_id}"}, "sk": {"S": "RUN"}, "version": {"N": "0"},
                  "state": {"S": "IDLE"}, "body": {"S": json.dumps({"repository": repo, "commit": commit})}},
            ConditionExpression="attribute_not_exists(pk)",
        )
    except DYNAMODB.exceptions.ConditionalCheckFailedException:
        status = 200
    if _queue_url is None:
        _queue_url = SQS.get_queue_url(QueueName=f"{PREFIX}advance.fifo")["QueueUrl"]
    SQS.send_message(
        QueueUrl=_queue_url,
        MessageBody=json.dumps({"run_id": run_id, "expect": "IDLE", "actor": "webhook", "signal": {"type": "trigger"}}),
        MessageGroupId=run_id,
        MessageDeduplicationId=f"{run_id}:trigger",
    )
    answer = {"status": "created" if status == 201 else "exists", "run_id": run_id}
    DYNAMODB.put_item(
        TableName=TABLE,
        Item={"pk": {"S": f"IDEM#webhook:{delivery}"}, "sk": {"S": "IDEM"},
              "status": {"S": "completed"}, "result": {"S": json.dumps(answer)}},
    )
    return _answer(status, answer)
