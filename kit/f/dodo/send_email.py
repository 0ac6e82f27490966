# extra_requirements:
# wmill

# Send an email through the SMTP server of a Windmill `smtp` resource (host, port, user, password).
# Port 465 uses implicit TLS; otherwise STARTTLS is used whenever the server offers it. Optional
# resource key `from_address` is the default sender. `ics` attaches a calendar invite (text/calendar),
# e.g. the output of f/dodo/calendar_event_ics.
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from typing import TypedDict


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


def main(
    to: str,
    subject: str,
    body: str,
    from_address: str | None = None,
    ics: str | None = None,
    smtp: smtp = "$res:f/dodo/smtp",
):
    to, subject, body = unguard(to), unguard(subject), unguard(body)
    smtp = resolve_resource(smtp)
    sender = from_address or smtp.get("from_address") or smtp.get("user")
    if not sender:
        raise ValueError("no sender: pass from_address or set from_address (or user) in the smtp resource")
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(body)
    if ics:
        message.add_attachment(
            ics.encode(), maintype="text", subtype="calendar", filename="event.ics", params={"method": "PUBLISH"}
        )
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
    return {"sent": True, "to": to, "message_id": message["Message-ID"]}
