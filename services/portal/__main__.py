import uvicorn

from shared.logging import configure_logging

from .app import create_app
from .settings import PortalSettings

settings = PortalSettings()
configure_logging("portal", settings.log_level)
uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, access_log=False)
