# extra_requirements:
# wmill

# Tell a customer that their subscription payment failed and Dodo is retrying it (dunning.started), and
# that it went through (dunning.recovered); once per event (dodo_notifications). Takes exactly the fields of
# headrace's builtin:dunning template. The address comes from dodo_customers (filled by the payment flow).
# Edit the texts in MESSAGES to your voice.
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


MESSAGES = {
    "dunning.started": (
        "Action needed: your subscription payment failed",
        """{greeting}

We could not charge the renewal of your subscription ({subscription_id}). We will try again over the
next few days. To keep your subscription without interruption, please update your payment method.
""",
    ),
    "dunning.recovered": (
        "Your subscription payment went through",
        """{greeting}

The renewal of your subscription ({subscription_id}) has now been paid. Thank you: there is nothing
else to do.
""",
    ),
}


def main(
    event_type: str,
    webhook_id: str,
    timestamp: str,
    business_id: str,
    subscription_id: str,
    customer_id: str,
    status: str,
    created_at: str,
    trigger_state: str | None = None,
    payment_id: str | None = None,
    db: postgresql = "$res:f/dodo/db",
    smtp: smtp = "$res:f/dodo/smtp",
):
    if event_type not in MESSAGES:
        raise ValueError(f"{event_type!r} is not a dunning event (webhook {webhook_id})")
    subject, text = MESSAGES[event_type]

    def compose(name: str) -> tuple[str, str]:
        greeting = f"Hello {name}," if name else "Hello,"
        return subject, text.format(greeting=greeting, subscription_id=subscription_id)

    result = email_once(db, smtp, event_type, f"{event_type}:{webhook_id}", webhook_id, customer_id, compose)
    return {**result, "subscription_id": subscription_id}
