"""python -m services.portal: serve the portal until SIGINT/SIGTERM."""

from shared.logging import configure_logging
from shared.runtime import run

from .app import create_app
from .settings import PortalSettings

settings = PortalSettings()
configure_logging(settings.service_name, settings.log_level)
run(create_app(settings), settings)
