"""Privacy-portal routes used by customers, not staff.

PUBLIC (no credentials at all): POST /api/v1/privacy-portal/challenges and
POST /api/v1/privacy-portal/sessions, listed in ``PORTAL_PUBLIC``, and the HTML page GET /privacy.
Every other portal route needs a privacy-session token (``Authorization: Bearer rps_...``); staff
tokens are not accepted there, and portal tokens are not accepted anywhere else. Every response
under these paths carries ``Cache-Control: no-store`` (see :class:`NoStoreMiddleware`).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rapport.config import Settings
from rapport.crud import problem_responses
from rapport.deps import DbSession, client_ip
from rapport.errors import problem_response
from rapport.http import JSON
from rapport.privacy import portal
from rapport.privacy.outbox import Notifier
from rapport.privacy.schemas import (
    ChallengeIn,
    ChallengeOut,
    CodeIn,
    PortalProfile,
    PortalRequestIn,
    PortalRequestOut,
    PortalToken,
    PortalWithdrawIn,
    PortalWithdrawOut,
)

PREFIX = "/privacy-portal"
PORTAL_PUBLIC = {
    ("POST", f"/api/v1{PREFIX}/challenges"),
    ("POST", f"/api/v1{PREFIX}/sessions"),
}
NO_STORE_PREFIXES = ("/privacy", f"/api/v1{PREFIX}")

router = APIRouter(prefix=PREFIX, tags=["privacy-portal (customers)"])

_bearer = HTTPBearer(auto_error=False, description="Privacy-session token from POST /privacy-portal/sessions")


def _rid(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


async def get_subject(
    request: Request,
    db: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> portal.Subject:
    token = credentials.credentials if credentials else None
    return portal.resolve(db, token, ip=client_ip(request), request_id=_rid(request))


Subject = Annotated[portal.Subject, Depends(get_subject)]


@router.post(
    "/challenges",
    status_code=202,
    response_model=ChallengeOut,
    summary="PUBLIC: send a one-time code to your verified email or phone (same answer for any address)",
    operation_id="portal_start_challenge",
    responses=problem_responses(413, 422, 429),
)
def start_challenge(body: ChallengeIn, request: Request, db: DbSession) -> Response:
    settings: Settings = request.app.state.settings
    notifier: Notifier = request.app.state.notifier
    out = portal.start(db, settings, notifier, body.address, ip=client_ip(request), request_id=_rid(request))
    return JSON(out, status_code=202)


@router.post(
    "/sessions",
    status_code=201,
    response_model=PortalToken,
    summary="PUBLIC: exchange the code for a short-lived privacy-session token",
    operation_id="portal_verify_code",
    responses=problem_responses(401, 413, 422),
)
def verify_code(body: CodeIn, request: Request, db: DbSession) -> Response:
    settings: Settings = request.app.state.settings
    out = portal.verify(
        db, settings, body.challenge, body.code, ip=client_ip(request), request_id=_rid(request)
    )
    if out is None:
        # Answered, not raised: the wrong guess must be counted, so this unit commits.
        return problem_response(request, 401, "not-authenticated", "Authentication required", portal.BAD_CODE)
    return JSON(out, status_code=201)


@router.get(
    "/me",
    response_model=PortalProfile,
    summary="What Rapport holds about you: profile, contact points, consents, orders, interactions",
    operation_id="portal_my_data",
    responses=problem_responses(401),
)
def my_data(subject: Subject, db: DbSession) -> Response:
    return JSON(portal.my_data(db, subject))


@router.post(
    "/consents/withdraw",
    response_model=PortalWithdrawOut,
    summary="Withdraw your consent to one purpose; effective at once",
    operation_id="portal_withdraw_consent",
    responses=problem_responses(401, 413, 422),
)
def withdraw(body: PortalWithdrawIn, subject: Subject, db: DbSession) -> Response:
    return JSON(portal.withdraw(db, subject, body.purpose, body.partner_id))


@router.post(
    "/requests",
    status_code=201,
    response_model=PortalRequestOut,
    summary="File a request: access, correct, delete, port or restrict your data",
    operation_id="portal_file_request",
    responses=problem_responses(401, 413, 422),
)
def file_request(body: PortalRequestIn, subject: Subject, db: DbSession) -> Response:
    return JSON(portal.file_request(db, subject, body.kind, body.details), status_code=201)


@router.post(
    "/logout",
    status_code=204,
    summary="End your privacy session",
    operation_id="portal_logout",
    responses=problem_responses(401),
)
def logout(subject: Subject, db: DbSession) -> Response:
    portal.end(db, subject)
    return Response(status_code=204)


# -- the page ----------------------------------------------------------------------------------------

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)

STRINGS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "title": "我的个人信息",
        "intro": "输入您在我们这里验证过的邮箱或手机号，我们会发送一次性验证码。",
        "address": "邮箱或手机号",
        "send": "发送验证码",
        "code": "验证码",
        "verify": "验证",
        "held": "我们保存的您的信息",
        "consents": "您的同意",
        "withdraw": "撤回",
        "request": "提出请求",
        "kind_access": "查阅",
        "kind_correct": "更正",
        "kind_delete": "删除",
        "kind_port": "转移（导出）",
        "kind_restrict": "限制处理",
        "details": "说明（可选）",
        "submit": "提交",
        "logout": "退出",
        "done": "已收到。",
        "failed": "操作失败，请重试。",
        "other": "English",
    },
    "en": {
        "title": "My personal data",
        "intro": "Enter the email address or phone number you verified with us "
        "and we will send a one-time code.",
        "address": "Email or phone",
        "send": "Send code",
        "code": "Code",
        "verify": "Verify",
        "held": "What we hold about you",
        "consents": "Your consents",
        "withdraw": "Withdraw",
        "request": "Make a request",
        "kind_access": "Access",
        "kind_correct": "Correct",
        "kind_delete": "Delete",
        "kind_port": "Port (export)",
        "kind_restrict": "Restrict processing",
        "details": "Details (optional)",
        "submit": "Submit",
        "logout": "Log out",
        "done": "Received.",
        "failed": "That did not work; please try again.",
        "other": "中文",
    },
}


def page_language(request: Request) -> str:
    chosen = request.query_params.get("lang")
    if chosen in STRINGS:
        return chosen
    accept = request.headers.get("accept-language", "").lower()
    return "en" if accept.startswith("en") else "zh-CN"


def privacy_page(request: Request) -> Response:
    """PUBLIC: the customer privacy page (server-rendered; calls the JSON API above)."""
    lang = page_language(request)
    nonce = secrets.token_urlsafe(16)
    html = _templates.get_template("privacy.html").render(
        lang=lang,
        t=STRINGS[lang],
        other_lang="en" if lang == "zh-CN" else "zh-CN",
        api=f"/api/v1{PREFIX}",
        nonce=nonce,
    )
    csp = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": csp,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


class NoStoreMiddleware:
    """``Cache-Control: no-store`` on every response under the privacy page and portal API."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(NO_STORE_PREFIXES):
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
                message["headers"] = [*headers, (b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
            await send(message)

        await self.app(scope, receive, send_no_store)
