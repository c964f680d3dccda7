"""The front service, checked statically: nginx serves the built UI and proxies the rest to the API."""

from __future__ import annotations

import importlib.util
import re

from tests.deploy.test_deploy import DEPLOY, ROOT, compose

FRONT = DEPLOY / "front"


def test_the_front_image_carries_the_built_ui() -> None:
    text = (FRONT / "Dockerfile").read_text()
    assert "COPY src/linkprobe/ui/static/ /usr/share/nginx/html/ui/" in text
    assert (ROOT / "src/linkprobe/ui/static/index.html").is_file()
    assert compose()["services"]["front"]["build"]["dockerfile"] == "deploy/front/Dockerfile"


def test_nginx_serves_the_ui_and_proxies_the_api() -> None:
    conf = (FRONT / "nginx.conf").read_text()
    assert "root /usr/share/nginx/html;" in conf
    home = conf[conf.index("location = / {") :]
    assert home.index("try_files /ui/index.html") < home.index("}")
    assets = conf[conf.index("location /ui/ {") :]
    assert assets.index("try_files $uri =404;") < assets.index("}")
    fallback = conf[conf.index("location / {") :]
    assert fallback.index("proxy_pass http://linkprobe_api;") < fallback.index("}")


def local_front_headers() -> dict[str, str]:
    spec = importlib.util.spec_from_file_location("front", DEPLOY / "front.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    headers: dict[str, str] = module.HEADERS
    return headers


def test_nginx_and_the_local_front_send_the_same_security_headers() -> None:
    conf = (FRONT / "nginx.conf").read_text()
    nginx = dict(
        re.findall(r'add_header (\S+) "([^"]+)" always;', (FRONT / "security-headers.inc").read_text())
    )
    assert nginx == local_front_headers()
    assert "default-src 'self'" in nginx["Content-Security-Policy"]
    assert "unsafe-inline" not in nginx["Content-Security-Policy"]
    for location in ("location = / {", "location /ui/ {"):
        block = conf.split(location)[1].split("}")[0]
        assert "include /etc/nginx/conf.d/security-headers.inc;" in block
    dockerfile = (FRONT / "Dockerfile").read_text()
    assert "COPY deploy/front/security-headers.inc /etc/nginx/conf.d/security-headers.inc" in dockerfile
