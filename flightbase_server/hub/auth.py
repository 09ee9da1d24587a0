"""Sign-up with administrator approval, and a non-interactive first administrator.

:class:`FlightbaseAuthenticator` is JupyterHub's NativeAuthenticator (people
sign up at ``/hub/signup``; an administrator approves them at
``/hub/authorize``), plus one addition: the initial administrator's password
is set from configuration when the hub starts, so no default password ever
exists and automation needs no browser. ``flightbase up`` generates that
password (or takes ``FLIGHTBASE_ADMIN_PASSWORD``) and prints it once.

Logins go through one check, :meth:`FlightbaseAuthenticator.check_login`, under
NativeAuthenticator's lockout (``allowed_failed_logins`` wrong passwords, then
none is checked for ``seconds_before_next_try``), approved or not: the login page
tells an account that awaits approval apart only for its correct password, and
never checks a password outside that lockout.
"""

from __future__ import annotations

import math
from datetime import datetime

import bcrypt
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator import handlers as native_handlers
from nativeauthenticator.orm import UserInfo
from traitlets import Unicode, default

INVALID_LOGIN = "Invalid username or password."


class FlightbaseAuthenticator(NativeAuthenticator):
    initial_admin = Unicode(
        "",
        config=True,
        help="""Name of the administrator created when the hub first starts.

        Also listed in ``admin_users``. Its password comes from
        ``initial_admin_password``; once the account exists, later starts leave
        it alone (change it at /hub/change-password).
        """,
    )

    initial_admin_password = Unicode(
        "",
        config=True,
        help="""Password for ``initial_admin`` when that account is first created.

        Never logged. Empty means: do not create the account (an operator then
        signs up as ``initial_admin`` through /hub/signup, which admits admins
        without approval).
        """,
    )

    @default("seconds_before_next_try")
    def _seconds_before_next_try_default(self):
        # NativeAuthenticator's help says 600, but its trait only carries that as a tag and
        # defaults to 0, with which an account is never locked out however many guesses fail
        return 600

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._bootstrap_initial_admin()

    async def authenticate(self, handler, data):
        """NativeAuthenticator's ``authenticate``, through :meth:`check_login`.

        The reason for a refusal is left on the handler (``login_error``), so
        that the login page can answer it without checking the password again.
        """
        name, error = self.check_login(data.get("username", ""), data.get("password", ""), data.get("2fa"))
        if handler is not None:
            handler.login_error = error
        return name

    def check_login(self, username: str, password: str, token: str | None = None) -> tuple[str | None, str]:
        """``(name, "")`` for a correct login, else ``(None, the message to show)``.

        NativeAuthenticator checked the password of an account awaiting approval
        a second time in its login page, outside the lockout, to say "not
        authorized yet": guessing such an account's password was unlimited. Here
        each attempt checks the password at most once, and only while the
        account is not locked out; a wrong password (or 2FA code) counts as a
        failed attempt whether or not the account is approved. A correct
        password of an account awaiting approval neither counts nor resets the
        count: it proves nothing new to whoever sent it. Approved or not, a
        wrong password costs the same (one bcrypt check) and gets the same
        answer, and a locked-out account gets the lockout answer whatever the
        password, without a check.
        """
        name = self.normalize_username(username) if username else ""
        info = self.get_user(name) if name else None
        if info is None:
            return None, INVALID_LOGIN
        if self.allowed_failed_logins and self.is_blocked(name):
            return None, self._locked_out(username, name)
        valid = info.is_valid_password(password) and (not info.has_2fa or info.is_valid_token(token))
        if not valid:
            self.add_login_attempt(name)
            if self.allowed_failed_logins and self.is_blocked(name):
                return None, self._locked_out(username, name)
            return None, INVALID_LOGIN
        if not info.is_authorized:
            return None, f"User {username} has not been authorized by an administrator yet."
        self.successful_login(name)
        return name, ""

    def can_try_to_login_again(self, username):
        # NativeAuthenticator compares timedelta.seconds, which starts again from 0 every day
        attempts = self.login_attempts.get(username)
        return not attempts or (datetime.now() - attempts["time"]).total_seconds() > self.seconds_before_next_try

    def _locked_out(self, username: str, name: str) -> str:
        last = self.login_attempts[name]["time"]
        wait = max(1, math.ceil(self.seconds_before_next_try - (datetime.now() - last).total_seconds()))
        when = f"{math.ceil(wait / 60)} minutes" if wait > 90 else f"{wait} second{'s' if wait > 1 else ''}"
        return f"Too many failed attempts to sign in as {username}: try again in {when}."

    def get_handlers(self, app):
        return [(path, LoginHandler if handler is native_handlers.LoginHandler else handler)
                for path, handler in super().get_handlers(app)]

    def _bootstrap_initial_admin(self) -> None:
        name = self.normalize_username(self.initial_admin) if self.initial_admin else ""
        if not name or not self.initial_admin_password or self.get_user(name) is not None:
            return
        hashed = bcrypt.hashpw(self.initial_admin_password.encode(), bcrypt.gensalt())
        self.db.add(UserInfo(username=name, password=hashed, is_authorized=True))
        self.db.commit()
        self.log.info("Created the initial administrator %s", name)


class LoginHandler(native_handlers.LoginHandler):
    """NativeAuthenticator's login page, adapted to JupyterHub 6, answering from one login check.

    NativeAuthenticator 1.3 times logins with ``self.statsd``, which JupyterHub 6
    no longer has, and its ``_render`` does not take the keyword arguments that
    JupyterHub 6 passes when it renders a login error; both fail with a 500. Its
    ``post`` checked the password again, outside the lockout, to tell an account
    awaiting approval apart; here the message comes from the one check that
    :meth:`FlightbaseAuthenticator.authenticate` made.
    """

    login_error = ""

    def _render(self, login_error=None, username=None, **_ignored):
        return super()._render(login_error=login_error, username=username)

    async def post(self):
        data = {arg: self.get_argument(arg, strip=False) for arg in self.request.arguments}
        user = await self.login_user(data)
        if user:
            self._jupyterhub_user = user
            self.redirect(self.get_next_url(user))
            return
        # a refusal after the check (JupyterHub's own blocked_users, say) has no message of ours
        error = self.login_error or INVALID_LOGIN
        self.finish(await self._render(login_error=error, username=data.get("username", "")))
