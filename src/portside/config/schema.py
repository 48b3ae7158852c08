"""The configuration schema: Docker Distribution's `config.yml` keys, validated with clear messages.

Unknown keys are errors, so a misspelt or unsupported setting is never silently ignored.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from portside.config.durations import parse_duration
from portside.storage import factory


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds; written as Go durations ("168h", "1m30s") or integers of nanoseconds, as distribution reads them."""


class AccessLog(Strict):
    disabled: bool = False


class Log(Strict):
    level: Literal["error", "warn", "info", "debug"] = "info"
    formatter: Literal["text", "json", "logstash"] = "text"
    fields: dict[str, Any] = Field(default_factory=dict)
    accesslog: AccessLog = AccessLog()

    @field_validator("level", "formatter", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class Delete(Strict):
    enabled: bool = False


class Redirect(Strict):
    disable: bool = False


class Cache(Strict):
    """The blob descriptor cache: `redis` (shared by every worker and instance: which repositories hold which
    blobs). `inmemory` and empty cache nothing (registry/cache.py says why); `blobdescriptorsize` is accepted
    so Docker Distribution configurations load unchanged."""

    blobdescriptor: Literal["inmemory", "redis", ""] = "inmemory"
    blobdescriptorsize: int = Field(default=10000, ge=1)


class UploadPurging(Strict):
    enabled: bool = True
    age: Duration = 168 * 3600.0
    interval: Duration = 24 * 3600.0
    dryrun: bool = False

    @model_validator(mode="after")
    def _positive(self) -> UploadPurging:
        if self.enabled and (self.age <= 0 or self.interval <= 0):
            raise ValueError("uploadpurging age and interval must be positive")
        return self


class ReadOnly(Strict):
    enabled: bool = False


class Maintenance(Strict):
    uploadpurging: UploadPurging = UploadPurging()
    readonly: ReadOnly = ReadOnly()


STORAGE_SETTINGS = ("delete", "redirect", "cache", "maintenance")


class Storage(Strict):
    """`storage:` holds exactly one driver section (its name is the key) beside the shared settings."""

    driver: str = "filesystem"
    parameters: dict[str, Any] = Field(default_factory=dict)
    delete: Delete = Delete()
    redirect: Redirect = Redirect()
    cache: Cache = Cache()
    maintenance: Maintenance = Maintenance()

    @model_validator(mode="before")
    @classmethod
    def _split_driver(cls, value: Any) -> Any:
        if not isinstance(value, dict) or "driver" in value:
            return value
        if not value:
            value = {"filesystem": {}}
        drivers = {k: v for k, v in value.items() if k not in STORAGE_SETTINGS}
        if len(drivers) != 1:
            names = ", ".join(sorted(drivers)) or "none"
            raise ValueError(f"storage needs exactly one driver section (found: {names})")
        ((driver, parameters),) = drivers.items()
        # The driver's own model (beside the driver, registered with the factory) checks its keys; its errors
        # are located under the driver's section (`storage.s3.bucket`, not `storage.bucket`).
        try:
            parameters = factory.parameters_model(driver).model_validate(parameters or {}).model_dump()
        except ValidationError as exc:
            errors = [{**e, "loc": (driver, *e["loc"])} for e in exc.errors()]
            raise ValidationError.from_exception_data(exc.title, errors) from None  # type: ignore[arg-type]
        settings = {k: v for k, v in value.items() if k in STORAGE_SETTINGS}
        return {"driver": driver, "parameters": parameters, **settings}


def _check_addr(addr: str, key: str) -> str:
    _, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{key} must be host:port or :port, got {addr!r}")
    return addr


def split_addr(addr: str) -> tuple[str, int]:
    """(host, port) of `host:port`, `[v6]:port` or `:port`; an empty host means every interface."""
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


class Prometheus(Strict):
    enabled: bool = False
    path: str = "/metrics"


class Debug(Strict):
    """The debug server: `/debug/health` and metrics on their own address, away from the registry's clients."""

    addr: str = ""
    prometheus: Prometheus = Prometheus()

    @field_validator("addr")
    @classmethod
    def _addr(cls, value: str) -> str:
        return _check_addr(value, "http.debug.addr") if value else value


class Tls(Strict):
    certificate: str
    key: str
    clientcas: list[str] = Field(default_factory=list)
    minimumtls: Literal["tls1.2", "tls1.3"] = "tls1.2"

    @field_validator("minimumtls", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class Http(Strict):
    addr: str = ":5000"
    net: Literal["tcp", "unix"] = "tcp"
    host: str = ""
    prefix: str = ""
    # Distribution signs upload state with it; Portside keeps upload sessions in the shared metadata store,
    # so instances need no shared secret. Accepted so existing configurations load unchanged.
    secret: str = ""
    relativeurls: bool = False
    draintimeout: Duration = 0.0
    headers: dict[str, list[str]] = Field(default_factory=dict)
    debug: Debug = Debug()
    tls: Tls | None = None

    @field_validator("host")
    @classmethod
    def _host_url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^/\s]+(/.*)?\Z", value):
            raise ValueError("http.host must be an absolute URL such as https://registry.example.com:5000")
        return value.rstrip("/")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip("/")
        if value and not re.match(r"^[A-Za-z0-9._~/-]+\Z", value):
            raise ValueError("http.prefix may only contain URL path characters")
        return f"/{value}" if value else ""

    @field_validator("headers", mode="before")
    @classmethod
    def _header_lists(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v if isinstance(v, list) else [v] for k, v in value.items()}
        return value


class UrlRules(Strict):
    allow: list[str] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)

    @field_validator("allow", "deny")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        return value


class PlatformEntry(Strict):
    architecture: str
    os: str


class IndexRules(Strict):
    platforms: Literal["all", "none", "list"] = "all"
    platformlist: list[PlatformEntry] = Field(default_factory=list)

    @field_validator("platforms", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class ManifestRules(Strict):
    urls: UrlRules = UrlRules()
    indexes: IndexRules = IndexRules()


class Validation(Strict):
    disabled: bool = False
    enabled: bool | None = None  # distribution's older spelling of the same switch
    manifests: ManifestRules = ManifestRules()

    @property
    def active(self) -> bool:
        return not self.disabled if self.enabled is None else self.enabled and not self.disabled


class Catalog(Strict):
    maxentries: int = Field(default=1000, ge=1)


class DatabasePool(Strict):
    """Connections per worker process (PostgreSQL)."""

    maxidle: int = Field(default=5, ge=1)
    maxopen: int = Field(default=10, ge=1)
    maxlifetime: Duration = 1800.0

    @model_validator(mode="after")
    def _sizes(self) -> DatabasePool:
        if self.maxopen < self.maxidle:
            raise ValueError("database.pool.maxopen must be at least maxidle")
        return self


class Database(Strict):
    """Portside's metadata store: `sqlite:///PATH` or `postgresql://user:password@host:port/dbname`.
    Without a dsn: SQLite next to the filesystem driver's data."""

    dsn: str = ""
    busytimeout: Duration = 30.0
    connecttimeout: Duration = 10.0
    pool: DatabasePool = DatabasePool()

    @field_validator("dsn")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if value and not re.match(r"^(sqlite|postgresql|postgres)(\+\w+)?://", value):
            raise ValueError("database.dsn must start with sqlite:// or postgresql://")
        return value.replace("postgres://", "postgresql://", 1) if value.startswith("postgres://") else value


class RedisPool(Strict):
    maxidle: int = Field(default=16, ge=0)
    maxactive: int = Field(default=64, ge=1)
    idletimeout: Duration = 300.0


class RedisTls(Strict):
    enabled: bool = False


class Redis(Strict):
    """Docker Distribution's `redis:` keys."""

    addr: str = ""
    username: str = ""
    password: str = ""
    db: int = Field(default=0, ge=0)
    dialtimeout: Duration = 5.0
    readtimeout: Duration = 5.0
    writetimeout: Duration = 5.0
    pool: RedisPool = RedisPool()
    tls: RedisTls = RedisTls()

    @field_validator("addr")
    @classmethod
    def _addr(cls, value: str) -> str:
        return _check_addr(value, "redis.addr") if value else value


class RedirectOptions(Strict):
    baseurl: str

    @field_validator("baseurl")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("baseurl must be an http:// or https:// URL")
        return value


class CloudFrontOptions(RedirectOptions):
    privatekey: str
    keypairid: str
    duration: Duration = 1200.0


STORAGE_MIDDLEWARE_OPTIONS: dict[str, type[Strict]] = {"redirect": RedirectOptions, "cloudfront": CloudFrontOptions}


class StorageMiddleware(Strict):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> StorageMiddleware:
        model = STORAGE_MIDDLEWARE_OPTIONS.get(self.name)
        if model is None:
            known = ", ".join(sorted(STORAGE_MIDDLEWARE_OPTIONS))
            raise ValueError(f"unknown storage middleware {self.name!r} (known: {known})")
        object.__setattr__(self, "options", model.model_validate(self.options).model_dump())
        return self


class Middleware(Strict):
    storage: list[StorageMiddleware] = Field(default_factory=list)


class SillyAuth(Strict):
    realm: str
    service: str


class HtpasswdAuth(Strict):
    realm: str = "basic-realm"
    path: str
    policy: str = ""


class TokenAuth(Strict):
    realm: str = ""
    service: str
    issuer: str
    rootcertbundle: str = ""
    jwks: str = ""
    autoredirect: bool = False
    autoredirectpath: str = "/auth/token"
    signingalgorithms: list[str] = Field(default_factory=list)


class Auth(Strict):
    """`auth:` holds exactly one access controller."""

    silly: SillyAuth | None = None
    htpasswd: HtpasswdAuth | None = None
    token: TokenAuth | None = None

    @model_validator(mode="after")
    def _one(self) -> Auth:
        chosen = [name for name in ("silly", "htpasswd", "token") if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError(f"auth needs exactly one of silly, htpasswd, token (found: {', '.join(chosen) or 'none'})")
        return self


class TokenServer(Strict):
    """Portside's built-in token server (docs/auth.md)."""

    path: str = "/token"
    addr: str = ""
    htpasswd: str
    policy: str = ""
    keydir: str = ""
    algorithm: Literal["ES256", "RS256", "EdDSA"] = "ES256"
    expiration: Duration = 300.0
    refreshexpiration: Duration = 720 * 3600.0

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not re.match(r"^/[A-Za-z0-9._~/-]*\Z", value):
            raise ValueError("tokenserver.path must be an absolute URL path")
        return value

    @field_validator("addr")
    @classmethod
    def _addr(cls, value: str) -> str:
        return _check_addr(value, "tokenserver.addr") if value else value


class EndpointIgnore(Strict):
    mediatypes: list[str] = Field(default_factory=list)
    actions: list[str] = Field(default_factory=list)


class Endpoint(Strict):
    name: str
    url: str
    disabled: bool = False
    headers: dict[str, list[str]] = Field(default_factory=dict)
    timeout: Duration = 1.0
    threshold: int = Field(default=10, ge=1)
    backoff: Duration = 1.0
    ignoredmediatypes: list[str] = Field(default_factory=list)
    ignore: EndpointIgnore = EndpointIgnore()

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("notifications endpoint url must be an http:// or https:// URL")
        return value

    @field_validator("headers", mode="before")
    @classmethod
    def _header_lists(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v if isinstance(v, list) else [v] for k, v in value.items()}
        return value

    @field_validator("timeout", "backoff")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be a positive duration")
        return value


class NotificationEvents(Strict):
    includereferences: bool = False


class Outbox(Strict):
    """Portside's durable outbox of events: delivered events are kept for `retention` (0 keeps them forever),
    then removed by a job that runs every `pruneinterval`."""

    retention: Duration = 168 * 3600.0
    pruneinterval: Duration = 3600.0

    @model_validator(mode="after")
    def _sane(self) -> Outbox:
        if self.retention < 0 or self.pruneinterval <= 0:
            raise ValueError("notifications.outbox: retention must not be negative, pruneinterval must be positive")
        return self


class Notifications(Strict):
    events: NotificationEvents = NotificationEvents()
    outbox: Outbox = Outbox()
    endpoints: list[Endpoint] = Field(default_factory=list)

    @field_validator("endpoints")
    @classmethod
    def _unique(cls, value: list[Endpoint]) -> list[Endpoint]:
        names = [e.name for e in value]
        if len(names) != len(set(names)):
            raise ValueError("notification endpoint names must be unique")
        return value

    @property
    def active(self) -> list[Endpoint]:
        return [e for e in self.endpoints if not e.disabled]


class StorageDriverHealth(Strict):
    enabled: bool = True
    interval: Duration = 10.0
    threshold: int = Field(default=3, ge=1)


class FileHealth(Strict):
    file: str
    interval: Duration = 10.0


class HttpHealth(Strict):
    uri: str
    headers: dict[str, list[str]] = Field(default_factory=dict)
    statuscode: int = 200
    timeout: Duration = 3.0
    interval: Duration = 10.0
    threshold: int = Field(default=1, ge=1)


class TcpHealth(Strict):
    addr: str
    timeout: Duration = 3.0
    interval: Duration = 10.0
    threshold: int = Field(default=1, ge=1)

    @field_validator("addr")
    @classmethod
    def _addr(cls, value: str) -> str:
        return _check_addr(value, "health.tcp.addr")


class Health(Strict):
    storagedriver: StorageDriverHealth = StorageDriverHealth()
    file: list[FileHealth] = Field(default_factory=list)
    http: list[HttpHealth] = Field(default_factory=list)
    tcp: list[TcpHealth] = Field(default_factory=list)


class GCBlobs(Strict):
    """Online collection of links and blobs."""

    disabled: bool = False
    interval: Duration = 5.0
    storagetimeout: Duration = 5.0


class GCManifests(Strict):
    """Online collection of manifests: referrers whose subject is gone, and untagged ones when asked for."""

    disabled: bool = False
    interval: Duration = 5.0
    untagged: bool = False
    referrers: bool = True


class GC(Strict):
    """Garbage collection (GitLab's container registry keys): online collection from review queues, and the
    rules `portside garbage-collect` follows too."""

    disabled: bool = False
    reviewafter: Duration = 24 * 3600.0
    maxbackoff: Duration = 24 * 3600.0
    noidlebackoff: bool = False
    blobs: GCBlobs = GCBlobs()
    manifests: GCManifests = GCManifests()

    @model_validator(mode="after")
    def _sane(self) -> GC:
        if self.reviewafter < 0:
            raise ValueError("gc.reviewafter must not be negative")
        if self.blobs.interval <= 0 or self.manifests.interval <= 0 or self.maxbackoff <= 0:
            raise ValueError("gc intervals and gc.maxbackoff must be positive")
        return self

    @property
    def online(self) -> bool:
        return not self.disabled and not (self.blobs.disabled and self.manifests.disabled)


# The API prefixes of the registry's own address, which the UI's pages must leave alone.
_RESERVED_PATHS = ("/v2/", "/gitlab/", "/portside/", "/openapi.json")


class UI(Strict):
    """The web UI (Portside's): server-rendered pages over the management API, at `path` below http.prefix."""

    enabled: bool = True
    path: str = "/"

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        value = "/" + value.strip("/") + "/" if value.strip("/") else "/"
        if not re.match(r"^[A-Za-z0-9._~/-]+$", value) or "//" in value:
            raise ValueError("ui.path may only contain URL path characters")
        if any(value.startswith(p) for p in _RESERVED_PATHS):
            raise ValueError(f"ui.path must not lie under the registry's APIs ({', '.join(_RESERVED_PATHS)})")
        return value


class ProxyRemote(Strict):
    """One upstream of a pull-through cache: repositories named `<prefix>/...` are fetched from `url` (the rest
    of the name is the upstream's), or every repository when `prefix` is empty."""

    prefix: str = ""
    url: str
    username: str = ""
    password: str = ""
    ttl: Duration = 168 * 3600.0
    skipverify: bool = False
    timeout: Duration = 60.0
    """Longest the upstream may keep the cache waiting (to connect, or between bytes of an answer)."""
    retries: int = Field(default=3, ge=0, le=10)
    """How often a read the upstream failed (unreachable, timed out, 429, 502-504) is tried again."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("a proxy url must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        value = value.strip("/")
        if value and not re.match(r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$", value):
            raise ValueError(f"proxy prefix {value!r} is not a repository name prefix")
        return value


class Proxy(Strict):
    """A pull-through cache (Docker Distribution's `proxy:` keys, and Portside's `remotes` for several
    upstreams). `local: true` lets repositories that no upstream's prefix names be pushed to as usual."""

    remoteurl: str = ""
    username: str = ""
    password: str = ""
    ttl: Duration = 168 * 3600.0
    timeout: Duration = 60.0
    retries: int = Field(default=3, ge=0, le=10)
    remotes: list[ProxyRemote] = Field(default_factory=list)
    local: bool = False
    spooldirectory: str = ""

    @model_validator(mode="after")
    def _one_way(self) -> Proxy:
        if self.remoteurl and self.remotes:
            raise ValueError("proxy: give remoteurl or remotes, not both")
        prefixes = [r.prefix for r in self.remotes]
        if len(prefixes) != len(set(prefixes)):
            raise ValueError("proxy.remotes: prefixes must be unique")
        if "" in prefixes and len(prefixes) > 1:
            raise ValueError("proxy.remotes: a remote without a prefix takes every name; it must be the only one")
        return self

    @property
    def upstreams(self) -> list[ProxyRemote]:
        if self.remoteurl:
            single = {"url": self.remoteurl, "username": self.username, "password": self.password}
            return [
                ProxyRemote.model_validate(
                    {**single, "ttl": f"{self.ttl}s", "timeout": f"{self.timeout}s", "retries": self.retries}
                )
            ]
        return list(self.remotes)


class Config(Strict):
    version: str = "0.1"
    log: Log = Log()
    storage: Storage = Storage.model_validate({})
    http: Http = Http()
    validation: Validation = Validation()
    catalog: Catalog = Catalog()
    database: Database = Database()
    auth: Auth | None = None
    tokenserver: TokenServer | None = None
    notifications: Notifications = Notifications()
    health: Health = Health()
    redis: Redis = Redis()
    middleware: Middleware = Middleware()
    gc: GC = GC()
    proxy: Proxy = Proxy()
    ui: UI = UI()

    @model_validator(mode="after")
    def _redis_consistent(self) -> Config:
        if self.storage.cache.blobdescriptor == "redis" and not self.redis.addr:
            raise ValueError("storage.cache.blobdescriptor: redis needs redis.addr")
        return self

    @model_validator(mode="after")
    def _debug_consistent(self) -> Config:
        if self.http.debug.prometheus.enabled and not self.http.debug.addr:
            raise ValueError("http.debug.prometheus needs http.debug.addr: metrics are served by the debug server")
        return self

    @model_validator(mode="after")
    def _auth_consistent(self) -> Config:
        token = self.auth.token if self.auth is not None else None
        if self.tokenserver is not None and token is None:
            raise ValueError(
                "tokenserver needs auth.token (its service and issuer), so the tokens it signs are checked"
            )
        if token is not None and self.tokenserver is None:
            if not token.rootcertbundle and not token.jwks:
                raise ValueError("auth.token needs rootcertbundle or jwks to check token signatures")
            if not token.realm and not token.autoredirect:
                raise ValueError("auth.token needs a realm (or autoredirect: true)")
        return self

    def token_keydir(self) -> str:
        """Where the built-in token server keeps its key: tokenserver.keydir, else next to the data."""
        if self.tokenserver is not None and self.tokenserver.keydir:
            return self.tokenserver.keydir
        root = "./data"
        if self.storage.driver == "filesystem":
            root = self.storage.parameters.get("rootdirectory", root)
        return os.path.join(os.path.abspath(root), "token")

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> str:
        return str(value)

    def database_dsn(self) -> str:
        if self.database.dsn:
            return self.database.dsn
        if self.storage.driver == "inmemory":
            return "sqlite://"
        root = (
            self.storage.parameters.get("rootdirectory", "./data") if self.storage.driver == "filesystem" else "./data"
        )
        return f"sqlite:///{os.path.abspath(os.path.join(root, 'portside.db'))}"

    def listen(self) -> tuple[str, int]:
        """(host, port) of `http.addr`; an empty host listens on every interface."""
        return split_addr(self.http.addr)

    @field_validator("http")
    @classmethod
    def _addr(cls, value: Http) -> Http:
        if value.net == "tcp":
            _check_addr(value.addr, "http.addr")
        return value
