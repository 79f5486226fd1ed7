"""Account rules: registration, activation, login, token rotation and password reset."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg

from service import metrics
from service.accounts import passwords, tokens
from service.accounts.schemas import LoginIn, PasswordResetConfirmIn, RegisterIn
from service.addresses import canonical_email
from service.context import Context
from service.db import Database, Queries
from service.errors import BadRequest, Conflict, Forbidden, Gone, Unauthorized
from service.notifications import emails

Q = Queries("accounts")
MAX_CODE_FAILURES = 5


class EmailTaken(Conflict):
    slug, title = "email-taken", "Email already registered"


class WrongCode(BadRequest):
    slug, title = "wrong-code", "Wrong activation code"


class CodeExpired(Gone):
    slug, title = "code-expired", "Activation code expired"


class AlreadyActive(Conflict):
    slug, title = "already-active", "Account already active"


class InactiveAccount(Forbidden):
    slug, title = "inactive-account", "Account not activated"


class BadCredentials(Unauthorized):
    slug, title = "bad-credentials", "Incorrect email or password"


@dataclass(frozen=True)
class Account:
    id: UUID
    email: str
    is_active: bool
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Account:
        return cls(row["id"], row["email"], row["is_active"], row["created_at"])


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_in: int


class _DummyHash:
    """A real bcrypt hash at the configured cost, checked against when the email is unknown, so a
    wrong email takes as long as a wrong password (no account enumeration by timing)."""

    value: str | None = None

    async def get(self, rounds: int) -> str:
        if self.value is None:
            self.value = await passwords.hash_password(uuid.uuid4().hex, rounds)
        return self.value


_dummy = _DummyHash()


async def get_account(db: Database, account_id: UUID) -> Account | None:
    row = await db.fetch_one(Q.account_by_id, id=account_id)
    return Account.from_row(row) if row else None


async def register(ctx: Context, data: RegisterIn) -> Account:
    # A cheap check first saves a bcrypt round for the common duplicate; the insert settles races.
    if await ctx.db.fetch_val(Q.account_exists, email=data.email):
        raise EmailTaken(f"{data.email} is already registered")
    password_hash = await passwords.hash_password(data.password, ctx.settings.bcrypt_rounds)
    async with ctx.db.transaction():
        row = await ctx.db.fetch_one(Q.create_account, email=data.email, password_hash=password_hash)
        if row is None:
            raise EmailTaken(f"{data.email} is already registered")
        account = Account.from_row(row)
        job = await emails.queue(ctx, "activation", account.id, account.email)
    ctx.dispatcher.dispatch_soon(job)
    metrics.count("registrations")
    return account


async def authenticate(ctx: Context, email: str, password: str, scheme: str = "Bearer") -> Account:
    """The account these credentials open, active or not; BadCredentials otherwise, in similar time.
    `scheme` is the authentication scheme the caller used, named in the 401 challenge."""
    email = canonical_email(email)
    # No stored email holds U+0000, and PostgreSQL text cannot even be compared with one: an unknown email.
    row = await ctx.db.fetch_one(Q.account_by_email, email=email) if "\x00" not in email else None
    hashed = row["password_hash"] if row else await _dummy.get(ctx.settings.bcrypt_rounds)
    ok = await passwords.verify_password(password, hashed)
    if row is None or not ok:
        raise BadCredentials("Incorrect email or password", scheme=scheme)
    return Account.from_row(row)


async def activate(ctx: Context, email: str, password: str, code: str) -> Account:
    account = await authenticate(ctx, email, password, scheme="Basic")
    if account.is_active:
        raise AlreadyActive("This account is already active")
    secret = ctx.settings.secret_key
    failure: Exception | None = None
    async with ctx.db.transaction():
        state = await ctx.db.fetch_one(Q.lock_activation, id=account.id)
        if state is None:
            raise BadCredentials("Incorrect email or password", scheme="Basic")
        if state["is_active"]:
            raise AlreadyActive("This account is already active")
        stored = state["activation_code_hash"]
        if stored is None:
            raise CodeExpired("No valid activation code; request a new one")
        if state["code_expired"]:
            raise CodeExpired("The activation code has expired; request a new one")
        if not tokens.code_matches(secret, account.id, code, stored):
            # The failure must be committed, so it is raised only after the transaction ends.
            remaining = await ctx.db.fetch_val(Q.record_wrong_code, id=account.id, max_failures=MAX_CODE_FAILURES)
            failure = (
                WrongCode(f"Wrong code; {remaining} attempt(s) left")
                if remaining
                else CodeExpired("Too many wrong codes: this code is void; request a new one")
            )
        else:
            account = Account.from_row(await ctx.db.fetch_one(Q.activate_account, id=account.id))
            job = await emails.queue(ctx, "welcome", account.id, account.email)
    if failure is not None:
        raise failure
    ctx.dispatcher.dispatch_soon(job)
    metrics.count("activations")
    return account


async def resend_activation_code(ctx: Context, email: str, password: str) -> None:
    account = await authenticate(ctx, email, password, scheme="Basic")
    if account.is_active:
        raise AlreadyActive("This account is already active")
    async with ctx.db.transaction():
        await ctx.db.execute(Q.void_activation_code, id=account.id)
        job = await emails.queue(ctx, "activation", account.id, account.email)
    ctx.dispatcher.dispatch_soon(job)


async def _issue_tokens(ctx: Context, account_id: UUID, family_id: UUID) -> Tokens:
    refresh = tokens.new_opaque_token()
    await ctx.db.execute(
        Q.insert_refresh_token,
        account_id=account_id,
        family_id=family_id,
        token_hash=tokens.digest(refresh),
        ttl=ctx.settings.refresh_token_ttl,
    )
    access = tokens.create_access_token(ctx.settings.secret_key, account_id, ctx.settings.access_token_ttl)
    return Tokens(access.token, refresh, access.expires_in)


async def login(ctx: Context, data: LoginIn) -> Tokens:
    try:
        account = await authenticate(ctx, data.email, data.password)
    except BadCredentials:
        metrics.count("logins_failed")
        raise
    if not account.is_active:
        raise InactiveAccount("Activate the account with the emailed code first")
    return await _issue_tokens(ctx, account.id, uuid.uuid4())


async def refresh(ctx: Context, refresh_token: str) -> Tokens:
    invalid = Unauthorized("The refresh token is invalid, expired or revoked")
    async with ctx.db.transaction():
        row = await ctx.db.fetch_one(Q.lock_refresh_token, token_hash=tokens.digest(refresh_token))
        if row is None or row["expired"] or row["revoked_at"] is not None:
            raise invalid
        if row["rotated_at"] is not None:
            # A rotated token coming back means it leaked: end the whole session, for both holders.
            await ctx.db.execute(Q.revoke_family, family_id=row["family_id"])
        else:
            await ctx.db.execute(Q.mark_refresh_rotated, id=row["id"])
            return await _issue_tokens(ctx, row["account_id"], row["family_id"])
    raise invalid


async def logout(ctx: Context, refresh_token: str) -> None:
    async with ctx.db.transaction():
        row = await ctx.db.fetch_one(Q.lock_refresh_token, token_hash=tokens.digest(refresh_token))
        if row is not None:
            await ctx.db.execute(Q.revoke_family, family_id=row["family_id"])


async def request_password_reset(ctx: Context, email: str) -> None:
    """Queue a reset email if the account exists; the caller answers the same either way."""
    row = await ctx.db.fetch_one(Q.account_by_email, email=email)
    if row is None:
        return
    async with ctx.db.transaction():
        job = await emails.queue(ctx, "password_reset", row["id"], row["email"])
    ctx.dispatcher.dispatch_soon(job)


async def confirm_password_reset(ctx: Context, data: PasswordResetConfirmIn) -> None:
    password_hash = await passwords.hash_password(data.password, ctx.settings.bcrypt_rounds)
    async with ctx.db.transaction():
        row = await ctx.db.fetch_one(Q.lock_reset_token, token_hash=tokens.digest(data.token))
        if row is None:
            # Well-formed but not ours: a refusal of the credential, not a malformed request (400).
            raise Forbidden("The reset token is not valid")
        if row["used_at"] is not None or row["expired"]:
            raise Gone("The reset token was already used or has expired; request a new one")
        await ctx.db.execute(Q.set_password, id=row["account_id"], password_hash=password_hash)
        await ctx.db.execute(Q.use_reset_tokens, account_id=row["account_id"])
        await ctx.db.execute(Q.revoke_account_tokens, account_id=row["account_id"])


async def mint_for_email(ctx: Context, kind: str, account_id: UUID) -> dict[str, str] | None:
    """What an email about this account carries, minted as it is sent (emails.Mint), so that a code's
    minute starts when it leaves: a fresh activation code, whose digest replaces the last one (None once
    the account is active: that email is no longer needed), or a password-reset token. Only digests are
    stored. The welcome email carries nothing."""
    s = ctx.settings
    if kind == "activation":
        code = tokens.new_code()
        code_hash = tokens.code_digest(s.secret_key, account_id, code)
        stored = await ctx.db.fetch_val(
            Q.set_activation_code, id=account_id, code_hash=code_hash, ttl=s.activation_code_ttl
        )
        return {"code": code} if stored is not None else None
    if kind == "password_reset":
        token = tokens.new_opaque_token()
        await ctx.db.execute(
            Q.insert_reset_token, token_hash=tokens.digest(token), account_id=account_id, ttl=s.password_reset_ttl
        )
        return {"token": token}
    return {}


async def delete_account(ctx: Context, account_id: UUID) -> None:
    await ctx.db.execute(Q.delete_account, id=account_id)
