# JupyterHub configuration of the embedded (single machine) deployment.
# A thin mapping: `flightbase up` exports the settings, flightbase.hub.config
# turns them into traits. Start it with `flightbase up`, not by hand.
from flightbase import secrets
from flightbase.hub.config import configure_embedded
from flightbase.settings import PlatformSettings

c = get_config()  # noqa: F821 (provided by JupyterHub)
settings = PlatformSettings.from_env()
configure_embedded(c, settings, secrets.load_or_create(settings.data_dir))
