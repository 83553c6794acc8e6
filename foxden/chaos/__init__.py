"""`foxden chaos`: a private daemon under injected faults, and a verdict on every promise it makes (docs/chaos.md)."""
from foxden.chaos.cli import build_parser, main, options_from_args
from foxden.chaos.faults import DEFAULT_RATES, HANG_KINDS, KINDS, PER_JOB, PER_SECOND, SPECS, Fault, parse_rates
from foxden.chaos.jobs import PlannedJob, check_answer, plan_job
from foxden.chaos.options import Options, daemon_sections, parse_overrides
from foxden.chaos.report import percentiles, render
from foxden.chaos.run import Chaos, run_chaos
from foxden.client import job_request

__all__ = [
    "Chaos", "DEFAULT_RATES", "Fault", "HANG_KINDS", "KINDS", "Options", "PER_JOB", "PER_SECOND", "PlannedJob",
    "SPECS", "build_parser", "check_answer", "daemon_sections", "job_request", "main", "options_from_args",
    "parse_overrides", "parse_rates", "percentiles", "plan_job", "render", "run_chaos",
]
