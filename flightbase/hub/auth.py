"""Sign-up with administrator approval, and a non-interactive first administrator.

:class:`FlightbaseAuthenticator` is JupyterHub's NativeAuthenticator (people
sign up at ``/hub/signup``; an administrator approves them at
``/hub/authorize``), plus one addition: the initial administrator's password
is set from configuration when the hub starts, so no default password ever
exists and automation needs no browser. ``flightbase up`` generates that
password (or takes ``FLIGHTBASE_ADMIN_PASSWORD``) and prints it once.
"""

from __future__ import annotations

import bcrypt
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator import handlers as native_handlers
from nativeauthenticator.orm import UserInfo
from traitlets import Unicode


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

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._bootstrap_initial_admin()

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
    """NativeAuthenticator's login page, adapted to JupyterHub 6.

    NativeAuthenticator 1.3 times logins with ``self.statsd``, which JupyterHub 6
    no longer has, and its ``_render`` does not take the keyword arguments that
    JupyterHub 6 passes when it renders a login error; both fail with a 500.
    """

    def _render(self, login_error=None, username=None, **_ignored):
        return super()._render(login_error=login_error, username=username)

    async def post(self):
        data = {arg: self.get_argument(arg, strip=False) for arg in self.request.arguments}
        user = await self.login_user(data)
        if user:
            self._jupyterhub_user = user
            self.redirect(self.get_next_url(user))
            return
        error = "Invalid username or password."
        username = data.get("username", "")
        info = self.authenticator.get_user(username) if username else None
        if info is not None and info.is_valid_password(data.get("password", "")) and not info.is_authorized:
            error = f"User {username} has not been authorized by an administrator yet."
        self.finish(await self._render(login_error=error, username=username))
