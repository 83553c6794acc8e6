"""foxden: a supervised den of headless browsers on Thespian actors."""
from foxden.aclient import AsyncClient
from foxden.client import BrokenByDaemonError, Client, ClientError, ClosedByCallerError, ServerError
from foxden.client import TimedOutError, UnreachableError, job_request
from foxden.config import Config, ConfigError, load_config
from foxden.protocols.errors import ErrorCode
from foxden.protocols.wire import Answer, ErrorInfo, JobRequest, PageResult, ProtocolError

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "AsyncClient",
    "BrokenByDaemonError",
    "Client",
    "ClientError",
    "ClosedByCallerError",
    "Config",
    "ConfigError",
    "ErrorCode",
    "ErrorInfo",
    "JobRequest",
    "PageResult",
    "ProtocolError",
    "ServerError",
    "TimedOutError",
    "UnreachableError",
    "job_request",
    "load_config",
]
