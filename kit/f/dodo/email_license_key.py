# extra_requirements:
# wmill

# Email a new license key to the customer who bought it, once per key (dodo_notifications), however often
# Dodo delivers license_key.created. Takes exactly the fields of headrace's builtin:license_key template.
# The address comes from dodo_customers (filled by the payment flow). Edit SUBJECT and BODY to your voice.
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from typing import TypedDict

import psycopg


class postgresql(TypedDict):
    host: str
    port: int
    user: str
    dbname: str
    sslmode: str
    password: str


class smtp(TypedDict):
    host: str
    port: int
    user: str
    password: str


def resolve_resource(value):
    # Windmill passes the resource's value. When the caller (a headrace delivery) sent no value, the
    # default "$res:<path>" arrives as a plain string; fetch that resource here.
    if isinstance(value, str) and value.startswith("$res:"):
        import wmill

        return wmill.get_resource(value.removeprefix("$res:"))
    return value


def connect(db: postgresql) -> psycopg.Connection:
    db = resolve_resource(db)
    return psycopg.connect(
        host=db["host"],
        port=int(db.get("port") or 5432),
        user=db["user"],
        password=db.get("password") or None,
        dbname=db["dbname"],
        sslmode=db.get("sslmode") or "prefer",
        connect_timeout=10,
    )


GUARD = "\u2060"


def unguard(value):
    # headrace puts one invisible U+2060 in front of every Dodo text that starts with "$" (or with U+2060),
    # so Windmill never resolves a customer's text as a $var:/$res:/$WM_TOKEN reference. Take one off to
    # get the exact text back, at any depth of a dict or list (kit/README.md, "Text that starts with $").
    if isinstance(value, str):
        return value[1:] if value.startswith(GUARD) else value
    if isinstance(value, dict):
        return {key: unguard(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unguard(item) for item in value]
    return value


# The customer's address comes from dodo_customers, which the payment flow (f/dodo/on_payment, through
# f/dodo/upsert_customer_postgresql) fills: these events carry only the customer id.
CUSTOMER = "SELECT email, name FROM dodo_customers WHERE customer_id = %(customer_id)s"

# Claimed in the same transaction as the send: a replay finds the row and sends nothing; a failed send
# rolls the row back, so a retry sends.
CLAIM = """
INSERT INTO dodo_notifications (dedupe_key, kind, webhook_id, customer_id, recipient)
VALUES (%(dedupe_key)s, %(kind)s, %(webhook_id)s, %(customer_id)s, %(recipient)s)
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING dedupe_key
"""


def send(smtp: smtp, to: str, subject: str, body: str) -> str:
    # The SMTP part of f/dodo/send_email: port 465 is implicit TLS, otherwise STARTTLS when offered.
    sender = smtp.get("from_address") or smtp.get("user")
    if not sender:
        raise ValueError("no sender: set from_address (or user) in the smtp resource")
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(body)
    host, port = smtp["host"], int(smtp.get("port") or 587)
    context = ssl.create_default_context()
    if port == 465:
        client = smtplib.SMTP_SSL(host, port, timeout=30, context=context)
    else:
        client = smtplib.SMTP(host, port, timeout=30)
    with client:
        client.ehlo()
        if port != 465 and client.has_extn("starttls"):
            client.starttls(context=context)
            client.ehlo()
        if smtp.get("user") and smtp.get("password"):
            client.login(smtp["user"], smtp["password"])
        refused = client.send_message(message)
    if refused:
        raise RuntimeError(f"the SMTP server refused recipients: {refused}")
    return message["Message-ID"]


def email_once(db, smtp, kind: str, dedupe_key: str, webhook_id: str, customer_id: str, compose) -> dict:
    """Send `compose(name)` -> (subject, body) to the customer once per `dedupe_key`."""
    smtp = resolve_resource(smtp)
    with connect(db) as conn:
        row = conn.execute(CUSTOMER, {"customer_id": customer_id}).fetchone()
        if row is None or not row[0]:
            raise ValueError(
                f"no email address for customer {customer_id} in dodo_customers (webhook {webhook_id}): "
                "their payment event fills it (f/dodo/on_payment); retry once it is booked"
            )
        to, name = unguard(row[0]), unguard(row[1] or "")
        claim = {
            "dedupe_key": dedupe_key,
            "kind": kind,
            "webhook_id": webhook_id,
            "customer_id": customer_id,
            "recipient": to,
        }
        if conn.execute(CLAIM, claim).fetchone() is None:
            return {"sent": False, "duplicate": True, "to": to, "kind": kind}
        subject, body = compose(name)
        message_id = send(smtp, to, subject, body)
    return {"sent": True, "duplicate": False, "to": to, "kind": kind, "message_id": message_id}


SUBJECT = "Your license key"
BODY = """{greeting}

Thank you for your purchase. Here is your license key:

    {key}

{activations}
{expiry}

Keep this email: you need the key to activate the product.
"""


def compose_license(name: str, key: str, activations_limit: int | None, expires_at: str | None) -> tuple[str, str]:
    activations = (
        f"It activates on up to {activations_limit} device(s)." if activations_limit else "It has no activation limit."
    )
    expiry = f"It is valid until {expires_at[:10]}." if expires_at else "It does not expire."
    greeting = f"Hello {name}," if name else "Hello,"
    return SUBJECT, BODY.format(greeting=greeting, key=key, activations=activations, expiry=expiry)


def main(
    event_type: str,
    webhook_id: str,
    timestamp: str,
    business_id: str,
    license_key_id: str,
    key: str,
    status: str,
    product_id: str,
    customer_id: str,
    instances_count: int,
    created_at: str,
    payment_id: str | None = None,
    subscription_id: str | None = None,
    activations_limit: int | None = None,
    expires_at: str | None = None,
    source: str | None = None,
    db: postgresql = "$res:f/dodo/db",
    smtp: smtp = "$res:f/dodo/smtp",
):
    key = unguard(key)
    if event_type != "license_key.created":
        raise ValueError(f"{event_type!r} is not license_key.created (webhook {webhook_id})")
    if status != "active":
        return {"sent": False, "duplicate": False, "reason": f"license key {license_key_id} is {status}, not sent"}
    result = email_once(
        db,
        smtp,
        "license_key",
        f"license_key:{license_key_id}",
        webhook_id,
        customer_id,
        lambda name: compose_license(name, key, activations_limit, expires_at),
    )
    return {**result, "license_key_id": license_key_id}
