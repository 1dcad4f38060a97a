"""What a failed S3 request says: its S3 error code or HTTP status, and a hint for the codes users meet."""

from __future__ import annotations

import re

_CODE = re.compile(r"<Code>([^<]{1,64})</Code>")
_STATUS = re.compile(r"status code: (\d{3})")

NO_CREDENTIALS = (
    "no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or use an instance role)"
)
HINTS = {
    "NoSuchBucket": "the bucket does not exist (check the bucket name and the endpoint/region)",
    "AccessDenied": "access denied: the credentials lack permission for it",
    "403": "access denied (403): wrong credentials, or no permission for it",
    "InvalidAccessKeyId": "the access key id is not known to this endpoint: check AWS_ACCESS_KEY_ID",
    "SignatureDoesNotMatch": "the secret key does not match the access key: check AWS_SECRET_ACCESS_KEY",
    "ExpiredToken": "the session token has expired: refresh the credentials",
    "InvalidToken": "the session token is not valid: check AWS_SESSION_TOKEN",
    "PermanentRedirect": "the bucket is in another region: set AWS_DEFAULT_REGION",
    "301": "the bucket is in another region: set AWS_DEFAULT_REGION",
    "AuthorizationHeaderMalformed": "the region does not match the bucket's: set AWS_DEFAULT_REGION",
}


def error_code(error: Exception) -> str | None:
    """The S3 error code (``NoSuchKey``, ...) or else the HTTP status of a failed request, or None."""
    text = str(error)
    found = _CODE.search(text) or _STATUS.search(text)
    return found.group(1) if found else None


def s3_message(error: Exception) -> str:
    """The S3 error's ``<Message>``, or "no message"."""
    found = re.search(r"<Message>([^<]{0,300})</Message>", str(error))
    return found.group(1) if found else "no message"


def unreachable(error: Exception) -> bool:
    """Whether ``error`` says the endpoint could not be reached at all (no answer, after the retries)."""
    text = str(error)
    return any(s in text for s in ("error sending request", "Connection refused", "connection closed", "Max retries"))
