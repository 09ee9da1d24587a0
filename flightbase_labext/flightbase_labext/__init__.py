"""Flightbase in JupyterLab: the server extension and, once built, the front end's assets."""

try:
    from ._version import __version__
except ImportError:  # a source checkout that was never built
    __version__ = "dev"


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "flightbase-labext"}]


def _jupyter_server_extension_points():
    return [{"module": "flightbase_labext"}]


def _load_jupyter_server_extension(server_app):
    """Register the /flightbase/... routes of the single-user server."""
    from .handlers import setup_handlers

    setup_handlers(server_app.web_app)
    server_app.log.info("flightbase_labext: /flightbase routes registered")
