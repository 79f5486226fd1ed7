"""Request and response bodies of the accounts API."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import email_validator
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from service.addresses import canonical_email

_LETTER = re.compile(r"[^\W\d_]")
_DIGIT = re.compile(r"\d")
PASSWORD_MIN, PASSWORD_MAX = 8, 128
# check_password as a JSON Schema pattern (with minLength/maxLength): a digit and a letter, anywhere.
PASSWORD_PATTERN = r"^(?=[\s\S]*\d)(?=[\s\S]*[^\W\d_])"  # noqa: S105 (a pattern, not a password)  # nosec B105


def normalise_email(value: str) -> str:
    value = canonical_email(value)
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    return value


def check_password(value: str) -> str:
    if not PASSWORD_MIN <= len(value) <= PASSWORD_MAX:
        raise ValueError(f"Password must be {PASSWORD_MIN} to {PASSWORD_MAX} characters long")
    if not _LETTER.search(value) or not _DIGIT.search(value):
        raise ValueError("Password must contain at least one letter and one digit")
    return value


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


# email-validator refuses special-use domains (RFC 6761: .test, .invalid, .localhost...): no email reaches them.
SPECIAL_USE_DOMAINS = rf"[@.]({'|'.join(map(_any_case, email_validator.SPECIAL_USE_DOMAIN_NAMES))})\.?$"
Email = Annotated[
    str,
    Field(max_length=320),
    AfterValidator(normalise_email),
    WithJsonSchema(
        {
            "type": "string",
            "format": "email",
            "maxLength": 320,
            "not": {"pattern": SPECIAL_USE_DOMAINS},
            "description": "Not at a special-use domain (.test, .invalid, .localhost, .local, .onion, .arpa)",
        }
    ),
]
# Login takes whatever was typed (OAuth2 clients send a "username"): a malformed email is just wrong.
LoginEmail = Annotated[str, Field(min_length=1, max_length=320), AfterValidator(canonical_email)]
NewPassword = Annotated[
    str,
    AfterValidator(check_password),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": PASSWORD_MIN,
            "maxLength": PASSWORD_MAX,
            "pattern": PASSWORD_PATTERN,
            "description": f"{PASSWORD_MIN} to {PASSWORD_MAX} characters, with at least one letter and one digit",
        }
    ),
]
# Login checks any password; the cap stops a megabyte "password" from reaching bcrypt's pre-hash.
AnyPassword = Annotated[str, Field(min_length=1, max_length=1024)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class RegisterIn(Strict):
    email: Email
    password: NewPassword


class ActivateIn(Strict):
    code: Annotated[str, Field(pattern=r"^\d{4}$", description="The 4-digit code from the email")]


class LoginIn(Strict):
    email: LoginEmail
    password: AnyPassword


class LoginForm(Strict):
    """The OAuth2 password grant's form (RFC 6749, section 4.3): `username` is the email. A client's
    scope and id, which some OAuth2 libraries send, are taken and ignored."""

    username: LoginEmail
    password: AnyPassword
    # A form has no null: absent fields are simply not sent.
    grant_type: Literal["password"] = "password"
    scope: Annotated[str, Field(max_length=1024)] = ""
    client_id: Annotated[str, Field(max_length=1024)] = ""
    client_secret: Annotated[str, Field(max_length=1024)] = ""

    def login(self) -> LoginIn:
        return LoginIn(email=self.username, password=self.password)


class RefreshIn(Strict):
    refresh_token: Annotated[str, Field(min_length=1, max_length=256)]


class PasswordResetIn(Strict):
    email: Email


class PasswordResetConfirmIn(Strict):
    token: Annotated[str, Field(min_length=1, max_length=256)]
    password: NewPassword


class UserOut(BaseModel):
    id: UUID
    email: str
    is_active: bool
    created_at: datetime


class Accepted(BaseModel):
    detail: str


class TokensOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    expires_in: int
