import base64

import pytest
import standardwebhooks

from headrace.config.secret import decode_secret
from headrace.dodo.signature import SignatureError, sign, verify

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TS = 1614265330
BODY = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
KEY = decode_secret(SECRET)


def test_reference_vector_from_design():
    assert sign(KEY, MSG_ID, TS, BODY) == EXPECTED
    verified = verify([KEY], MSG_ID, str(TS), EXPECTED, BODY, now=TS, tolerance=300)
    assert (verified.webhook_id, verified.timestamp) == (MSG_ID, TS)


def test_agrees_with_the_standard_webhooks_reference_library():
    body = b'{"type": "payment.succeeded", "data": {"amount": 4999}}'
    reference = standardwebhooks.Webhook(SECRET).sign(MSG_ID, _dt(TS), body.decode())
    assert sign(KEY, MSG_ID, TS, body) == reference


def _dt(ts):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC)


def test_any_of_several_signatures_is_enough():
    header = f"v1,{base64.b64encode(b'x' * 32).decode()} v2,abc {EXPECTED}"
    assert verify([KEY], MSG_ID, str(TS), header, BODY, now=TS, tolerance=300).webhook_id == MSG_ID


def test_rotation_accepts_old_and_new_secret():
    new_key = decode_secret("whsec_" + base64.b64encode(b"n" * 24).decode())
    signed_with_new = sign(new_key, MSG_ID, TS, BODY)
    assert verify([KEY, new_key], MSG_ID, str(TS), signed_with_new, BODY, TS, 300)
    assert verify([KEY, new_key], MSG_ID, str(TS), EXPECTED, BODY, TS, 300)
    with pytest.raises(SignatureError) as err:
        verify([KEY], MSG_ID, str(TS), signed_with_new, BODY, TS, 300)
    assert err.value.status == 401 and err.value.reason == "bad_signature"


@pytest.mark.parametrize(("offset", "ok"), [(300, True), (-300, True), (301, False), (-301, False)])
def test_tolerance_edges(offset, ok):
    now = TS + offset
    if ok:
        assert verify([KEY], MSG_ID, str(TS), EXPECTED, BODY, now, 300)
    else:
        with pytest.raises(SignatureError) as err:
            verify([KEY], MSG_ID, str(TS), EXPECTED, BODY, now, 300)
        assert err.value.status == 401 and err.value.reason == "timestamp_out_of_tolerance"


def test_tampered_body_id_or_timestamp_fails():
    for args in ((MSG_ID, str(TS), BODY + b" "), ("msg_other", str(TS), BODY), (MSG_ID, str(TS + 1), BODY)):
        with pytest.raises(SignatureError) as err:
            verify([KEY], args[0], args[1], EXPECTED, args[2], TS, 300)
        assert err.value.status == 401


@pytest.mark.parametrize(
    ("webhook_id", "timestamp", "signature", "reason"),
    [
        (None, str(TS), EXPECTED, "missing_headers"),
        (MSG_ID, None, EXPECTED, "missing_headers"),
        (MSG_ID, str(TS), None, "missing_headers"),
        (MSG_ID, "yesterday", EXPECTED, "malformed_headers"),
        (MSG_ID, str(TS), "v1,not base64!!", "malformed_headers"),
        (MSG_ID, str(TS), "v2,abc", "malformed_headers"),
    ],
)
def test_missing_or_malformed_headers_are_400(webhook_id, timestamp, signature, reason):
    with pytest.raises(SignatureError) as err:
        verify([KEY], webhook_id, timestamp, signature, BODY, TS, 300)
    assert (err.value.status, err.value.reason) == (400, reason)


@pytest.mark.parametrize("secret", ["whsec_", "whsec_!!!", "whsec_c2hvcnQ="])
def test_bad_secrets_are_refused_with_a_reason(secret):
    with pytest.raises(ValueError, match="secret"):
        decode_secret(secret)
