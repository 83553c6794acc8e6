"""foxden: a supervised den of headless browsers on Thespian actors."""
from foxden.aclient import AsyncClient
from foxden.client import Client, ClientError, ServerError, job_request
from foxden.config import Config, ConfigError, load_config
from foxden.protocols.wire import Answer, ErrorInfo, JobRequest, PageResult, ProtocolError

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "AsyncClient",
    "Client",
    "ClientError",
    "Config",
    "ConfigError",
    "ErrorInfo",
    "JobRequest",
    "PageResult",
    "ProtocolError",
    "ServerError",
    "job_request",
    "load_config",
]
