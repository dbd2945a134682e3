"""A minimal Lambda Runtime API client for the Python baseline (what the managed Python
runtime's bootstrap does): import the handler module (init), then poll
/2018-06-01/runtime/invocation/next and post each answer."""
import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import webhook_handler  # noqa: E402  (init: boto3 clients built at import)

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"

while True:
    with urllib.request.urlopen(API + "/invocation/next") as r:
        request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    try:
        result, path = webhook_handler.handler(event, None), "response"
    except Exception as e:  # reported to the Runtime API, as the managed runtime does
        result, path = {"errorMessage": str(e), "errorType": type(e).__name__}, "error"
    req = urllib.request.Request(
        f"{API}/invocation/{request_id}/{path}", data=json.dumps(result).encode(), method="POST"
    )
    urllib.request.urlopen(req).read()
