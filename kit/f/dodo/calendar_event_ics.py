# Build an iCalendar (RFC 5545) event, e.g. a renewal or trial-end reminder from a subscription's
# next_billing_date. Returns the .ics text (CRLF lines, escaped and folded) and a downloadable file;
# send it with f/dodo/send_email (`ics` argument). uid keeps the event stable when it is re-sent.
import base64
from datetime import UTC, datetime, timedelta


def escape(text: str) -> str:
    return (
        text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\r\n", "\\n").replace("\n", "\\n")
    )


def fold(line: str) -> str:
    # Lines longer than 75 octets continue on the next line after a single space.
    out, current = [], b""
    for char in line:
        encoded = char.encode()
        if len(current) + len(encoded) > (75 if not out else 74):
            out.append(current.decode())
            current = b""
        current += encoded
    out.append(current.decode())
    return "\r\n ".join(out)


def utc_stamp(value: str) -> str:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def main(
    uid: str,
    summary: str,
    start: str,
    end: str | None = None,
    description: str = "",
    location: str = "",
    organizer_email: str | None = None,
):
    if not uid or not summary:
        raise ValueError("uid and summary are required for a calendar event")
    if end is None:
        end = (datetime.fromisoformat(start.replace("Z", "+00:00")) + timedelta(minutes=30)).isoformat()
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//headrace//windmill kit//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:{escape(uid)}",
        f"DTSTAMP:{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}",
        f"DTSTART:{utc_stamp(start)}",
        f"DTEND:{utc_stamp(end)}",
        f"SUMMARY:{escape(summary)}",
    ]
    if description:
        lines.append(f"DESCRIPTION:{escape(description)}")
    if location:
        lines.append(f"LOCATION:{escape(location)}")
    if organizer_email:
        lines.append(f"ORGANIZER:mailto:{organizer_email}")
    lines += ["END:VEVENT", "END:VCALENDAR"]
    text = "\r\n".join(fold(line) for line in lines) + "\r\n"
    return {
        "ics": text,
        "file": {"filename": "event.ics", "content": base64.b64encode(text.encode()).decode()},
    }
