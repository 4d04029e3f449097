"""python -m services.scheduling: run the scheduling service until SIGINT/SIGTERM."""

from shared.logging import configure_logging
from shared.runtime import run, service_clock
from shared.settings import KringSettings

from .app import SERVICE, create_app

settings = KringSettings(service_name=SERVICE)
configure_logging(SERVICE, settings.log_level)
run(create_app(settings, clock=service_clock(settings)), settings)
