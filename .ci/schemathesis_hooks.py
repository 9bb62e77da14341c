"""Schemathesis hooks for Rampart's CI run (.ci/schemathesis.sh).

The OpenAPI document states every rule a JSON Schema can state; these hooks only supply what
no schema can: state. They touch schema-valid (positive) requests only, and only these ways:

- every request carrying an Idempotency-Key gets a fresh one, because a key is a promise about
  one payload (a reused key with another payload is 422 `idempotency_key_reused` by design);
- references to objects (`conversation_id`, `contact_id` in bodies) name objects created for
  the request (the fuzzer deletes what it finds, so nothing made in advance survives), since an
  id of the right shape that names nothing is a 422 rule (SPEC §4), and a scheduled message
  names a conversation rather than a contact (422 `unsupported_target`);
- times that must lie in the future (`send_at`, `expires_at`) are moved there;
- an events endpoint subscribes to at least one event (a channel endpoint needs none);
- a message to send has an active channel endpoint to go through (the fuzzer deletes and
  pauses endpoints; without one, sending is 422 `channel_not_configured`);
- the dead-letter routes name a real dead letter, a resend its delivery and endpoint, and an
  export download a ready export with its signed link (made by .ci/schemathesis.sh with a
  short worker run, since no worker runs during the test): an id of the right shape that names
  nothing is 404 before the route's own logic, and no schema can forge a signature;
- an invited member has a fresh email (inviting a member twice is 409 by design); the fuzzer
  cannot remove or demote the org's only owner (the server answers 409 `last_owner`), and a
  member it invites never has the owner's email, so the token under test keeps working; a
  member to change or remove is one invited for the request.

Negative requests go out exactly as generated.
"""

import datetime
import os
import uuid

import requests
import schemathesis

BASE = os.environ["ST_RAMPART_BASE"]
CREDENTIAL = os.environ["ST_RAMPART_CREDENTIAL"]
DEAD_LETTER = os.environ["ST_RAMPART_DEAD_LETTER"]
DELIVERY = {"id": os.environ["ST_RAMPART_ENDPOINT"], "delivery_id": os.environ["ST_RAMPART_DELIVERY"]}
EXPORT = os.environ["ST_RAMPART_EXPORT"]
EXPORT_LINK = {"expires": os.environ["ST_RAMPART_EXPORT_EXPIRES"], "signature": os.environ["ST_RAMPART_EXPORT_SIGNATURE"]}


def _create(path, body):
    r = requests.post(BASE + path, json=body, headers=_auth(), timeout=30)
    r.raise_for_status()
    return r.json()["id"]


def _auth():
    return {"Authorization": "Bearer " + CREDENTIAL}


def _ensure_channel():
    """The org's one channel endpoint, re-enabled, or a new one (never delivered to: the
    server under test runs no worker)."""
    cursor = ""
    while True:
        r = requests.get(
            BASE + "/v1/webhooks", params={"limit": 100, "cursor": cursor}, headers=_auth(), timeout=30
        )
        r.raise_for_status()
        page = r.json()
        for ep in page["data"]:
            if ep["kind"] == "channel":
                if ep["status"] != "active":
                    requests.patch(
                        BASE + "/v1/webhooks/" + ep["id"], json={"status": "active"}, headers=_auth(), timeout=30
                    ).raise_for_status()
                return
        cursor = page["next_cursor"]
        if not cursor:
            break
    _create("/v1/webhooks", {"url": "http://127.0.0.1:9/channel", "kind": "channel"})


def _member():
    r = requests.post(
        BASE + "/v1/members",
        json={"email": "st-" + str(uuid.uuid4()) + "@example.com", "role": "viewer"},
        headers=_auth(),
        timeout=30,
    )
    if r.status_code == 403:
        return None  # an API key: members are for people's tokens, so the route answers 403
    r.raise_for_status()
    return r.json()["user_id"]


def _contact():
    return _create("/v1/contacts", {"external_key": "st-" + str(uuid.uuid4())})


def _conversation():
    return _create("/v1/conversations", {"contact_id": _contact(), "channel": "sms"})


def _positive(case):
    meta = case.meta
    return meta is None or meta.generation.mode.is_positive


def _in(seconds):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@schemathesis.hook
def before_call(context, case, kwargs):
    if not _positive(case):
        return
    path = case.operation.path
    if case.path_parameters is not None:
        if path in ("/v1/dead-letters/{id}", "/v1/dead-letters/{id}/replay"):
            case.path_parameters["id"] = DEAD_LETTER
        if path == "/v1/webhooks/{id}/deliveries/{delivery_id}/resend":
            case.path_parameters.update(DELIVERY)
        if path == "/v1/exports/{id}/download":
            case.path_parameters["id"] = EXPORT
            case.query = dict(EXPORT_LINK)
        if path == "/v1/members/{id}":
            member = _member()
            if member:
                case.path_parameters["id"] = member
    headers = case.headers if case.headers is not None else {}
    for name in list(headers):
        if name.lower() == "idempotency-key":
            headers[name] = str(uuid.uuid4())
    body = case.body
    if not isinstance(body, dict):
        return
    method = case.method.upper()
    if method == "POST" and path == "/v1/messages":
        _ensure_channel()
    if method == "POST" and path in ("/v1/messages", "/v1/messages/inbound"):
        if "conversation_id" in body:
            body["conversation_id"] = _conversation()
    if method == "POST" and path == "/v1/scheduled-messages":
        body.pop("contact_id", None)
        body["conversation_id"] = _conversation()
        if "send_at" in body:
            body["send_at"] = _in(3600)
    if method == "POST" and path == "/v1/conversations":
        body["contact_id"] = _contact()
    if method == "POST" and path == "/v1/developer/keys" and body.get("expires_at"):
        body["expires_at"] = _in(86400)
    if method == "POST" and path == "/v1/members":
        body["email"] = "st-" + str(uuid.uuid4()) + "@example.com"
    if method == "POST" and path == "/v1/webhooks":
        if body.get("kind") != "channel" and not body.get("events"):
            body["events"] = ["*"]
