"""Cluster specs (FRAY_CLUSTER_SPEC), parsed as the Go client does."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlparse

from .errors import ConfigError

ACCEPTED = """accepted forms:
  local (or unset)                          a local cluster started from the fray binaries
  nats://HOST:PORT[,nats://HOST2:PORT...]   a running fray cluster
  ray?address=http://HOST:8265[&namespace=NS][&token=T][&nats=URL]
                                            jobs go to a Ray cluster (Jobs REST API)
  iris?controller=http://HOST:PORT[&user=U][&token=T][&nats=URL]
                                            jobs go to an Iris controller"""


@dataclass
class Spec:
    kind: str  # local, nats, ray, iris
    urls: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    raw: str = ""


def parse(spec: str | None) -> Spec:
    raw = spec if spec is not None else os.environ.get("FRAY_CLUSTER_SPEC", "")
    s = raw.strip()

    def bad(why: str) -> ConfigError:
        return ConfigError(f"frayhq: bad cluster spec {raw!r}: {why}\n{ACCEPTED}")

    if s in ("", "local"):
        return Spec("local", raw=raw)
    if s.startswith(("nats://", "tls://")):
        urls = []
        for u in s.split(","):
            u = u.strip()
            pu = urlparse(u)
            if pu.scheme not in ("nats", "tls") or not pu.netloc:
                raise bad(f"{u!r} is not a nats://HOST:PORT URL")
            urls.append(u)
        return Spec("nats", urls=urls, raw=raw)
    kind, _, query = s.partition("?")
    if kind in ("ray", "iris"):
        params = dict(parse_qsl(query, keep_blank_values=True))
        need = {"ray": "address", "iris": "controller"}[kind]
        addr = params.get(need, "")
        if not addr:
            raise bad(f"the {kind} spec needs {need}=http://HOST:PORT")
        pu = urlparse(addr)
        if pu.scheme not in ("http", "https") or not pu.netloc:
            raise bad(f"{need} {addr!r} is not an http(s)://HOST:PORT URL")
        sp = Spec(kind, params=params, raw=raw)
        if params.get("nats"):
            try:
                inner = parse(params["nats"])
            except ConfigError:
                inner = Spec("bad")
            if inner.kind != "nats":
                raise bad(f"nats={params['nats']!r} is not a nats:// URL")
            sp.urls = inner.urls
        return sp
    raise bad("unknown form")
