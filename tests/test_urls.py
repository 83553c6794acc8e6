"""Which URLs jobs may open."""
from __future__ import annotations

import pytest

from foxden.protocols.urls import check_url


@pytest.mark.parametrize("url", ["http://example.test/", "https://127.0.0.1:8443/x?y=1", "about:blank",
                                 "HTTP://Example.test/"])
def test_allowed(url):
    assert check_url(url) is None


@pytest.mark.parametrize("url, code", [
    ("file:///etc/passwd", "unsupported_scheme"), ("chrome://settings", "unsupported_scheme"),
    ("view-source:http://x.test/", "unsupported_scheme"), ("javascript:alert(1)", "unsupported_scheme"),
    ("about:config", "unsupported_scheme"), ("data:text/html,x", "unsupported_scheme"),
    ("ftp://x.test/", "unsupported_scheme"), ("no-scheme.test", "unsupported_scheme"),
    ("http://", "bad_url"), ("http://x.test:99999/", "bad_url"), ("http://[::1/", "bad_url"),
])
def test_refused(url, code):
    refusal = check_url(url)
    assert refusal is not None and refusal.code == code, refusal


@pytest.mark.parametrize("url", ["http://127.0.0.1/", "http://localhost:80/", "http://10.1.2.3/",
                                 "http://192.168.0.1/", "http://[::1]/", "http://169.254.169.254/latest",
                                 "http://0.0.0.0/", "http://api.localhost/"])
def test_private_targets_refused_only_when_configured(url):
    assert check_url(url) is None
    assert check_url(url, allow_private=False).code == "private_target"
    assert check_url("http://93.184.216.34/", allow_private=False) is None
