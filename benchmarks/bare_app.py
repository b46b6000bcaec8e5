"""The intake benchmark's baseline: a Flask endpoint that answers 202 and does nothing else."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/webhooks/zendesk")
def zendesk():
    request.get_data()  # read the body, as any endpoint must
    return jsonify(status="accepted", event_id=0), 202
