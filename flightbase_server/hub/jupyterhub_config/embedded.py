# JupyterHub configuration of the embedded (single machine) deployment.
# A thin mapping: `flightbase up` exports the settings, flightbase_server.hub.config
# turns them into traits. Start it with `flightbase up`, not by hand.
from flightbase_server import secrets
from flightbase_server.hub.config import configure_embedded
from flightbase_server.settings import PlatformSettings

c = get_config()  # noqa: F821 (provided by JupyterHub)
settings = PlatformSettings.from_env()
configure_embedded(c, settings, secrets.load_or_create(settings.data_dir))
