"""CampusCloud settings: one module, read from the environment, quick-start defaults.

Every knob an operator may turn is an environment variable documented in README.md.
`DJANGO_ENV=production` switches on the hardening that `check --deploy` asks for and
refuses to start with the development secret key or DEBUG on.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
RUN_DIR = BASE_DIR / ".run"

env = environ.Env()

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
PRODUCTION = DJANGO_ENV == "production"
DEV_SECRET_KEY = "campuscloud-development-only-secret-key-do-not-use-in-production"

SECRET_KEY = env.str("SECRET_KEY", default=DEV_SECRET_KEY)
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

if PRODUCTION:
    if SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 50:
        raise ImproperlyConfigured("DJANGO_ENV=production needs its own SECRET_KEY (50+ characters).")
    if DEBUG:
        raise ImproperlyConfigured("DJANGO_ENV=production refuses DEBUG=true.")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "django_htmx",
    "audit",
    "tenants",
    "tenants.identity",
    "tenants.accounts",
    "network",
    "compute",
    "compute.classroom",
    "billing",
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "portal.middleware.RequestIdMiddleware",
    "portal.middleware.BodySizeMiddleware",
    "portal.middleware.LockConflictMiddleware",
    "audit.middleware.AuditContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "portal.context_processors.navigation",
                "tenants.identity.context.sign_in",
            ],
        },
    },
]

# Database: SQLite for the quick start, MySQL/MariaDB (mysqlclient) in production and tests.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.mysql":
    _db.setdefault("OPTIONS", {}).update(
        {
            "charset": "utf8mb4",
            # READ COMMITTED keeps the row-lock helpers free of gap-lock deadlocks.
            "isolation_level": "read committed",
            "init_command": "SET sql_mode='STRICT_TRANS_TABLES', time_zone='+00:00'",
        }
    )
    _db["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
elif _db["ENGINE"] == "django.db.backends.sqlite3":
    # A worker and the web server share the file: wait for locks instead of failing.
    _db.setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
_db["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60 if PRODUCTION else 0)
_db["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "tenants.User"
AUTHENTICATION_BACKENDS = [
    # Local passwords: break-glass platform accounts and campuses without SSO; an account linked
    # to a campus identity is refused here unless the security admin allowed it (tenants.identity).
    "tenants.identity.backends.LocalBackend",
    "guardian.backends.ObjectPermissionBackend",
]
# AUTH_PASSWORD_VALIDATORS: see "Login security and audit" below.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
GUARDIAN_RAISE_403 = False
ANONYMOUS_USER_NAME = None

# Internationalisation: Chinese first, English second; stored in UTC, shown in Shanghai time.
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

# Static files: Bootstrap, htmx, noVNC and Chart.js come from npm at set-up (node_modules)
# and are served by the portal itself; campus networks have no CDN.
STATIC_URL = "/static/"
# Only production collects static files; the quick start serves them from the finders.
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles") if PRODUCTION else None
STATICFILES_DIRS = [BASE_DIR / "portal" / "static", ("vendor", BASE_DIR / "node_modules")]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not PRODUCTION
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "media")
MEDIA_URL = "/media/"

# Request limits: oversized bodies get a 413 in the user's language (portal.middleware).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=5 * 1024 * 1024)
MAX_REQUEST_BODY = env.int("MAX_REQUEST_BODY", default=10 * 1024 * 1024)

# Sessions and cookies.
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="campuscloud@localhost")

# REST API.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "portal.api.permissions.AuditorsReadOnly",
    ],
    "DEFAULT_PAGINATION_CLASS": "common.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "common.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["common.api.renderers.ORJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "common.api.parsers.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CampusCloud API",
    "DESCRIPTION": "Self-service portal of the university's private cloud.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "TenantKindEnum": "tenants.models.Tenant.Kind",
        "RequestKindEnum": "tenants.models.RequestKind",
        "TenantRoleEnum": "tenants.roles.TenantRole",
        "PlatformRoleEnum": "tenants.roles.PlatformRole",
        "StaffRoleEnum": "tenants.accounts.api.STAFF_ROLE_CHOICES",
    },
}

# Celery: a real worker on a real broker. The quick start uses kombu's filesystem
# transport (no server); production uses Redis or RabbitMQ.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
_broker_dir = RUN_DIR / "broker"
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {"visibility_timeout": 3600}
)
# A key prefix on Redis: a bench (bench/env.py) shares the live portal's Redis without sharing a
# queue with it; publisher and worker must both carry the same prefix.
BROKER_KEY_PREFIX = env.str("CELERY_BROKER_KEY_PREFIX", default="")
if BROKER_KEY_PREFIX and CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = BROKER_KEY_PREFIX
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_ALWAYS_EAGER = False
# Which queue a site's hypervisor work goes to; workers at a campus consume their own.
CELERY_DEFAULT_QUEUE = "default"
CELERY_SITE_QUEUE_PREFIX = "site."

DEFAULT_HYPERVISOR_URI = env.str("DEFAULT_HYPERVISOR_URI", default="test:///default")
# Network: how long a released address is held before reuse, the campus ranges the default
# security group admits, and the demo's lab subnet.
NETWORK_IP_HOLD_SECONDS = env.int("NETWORK_IP_HOLD_SECONDS", default=300)
NETWORK_CAMPUS_CIDRS = env.list("NETWORK_CAMPUS_CIDRS", default=["10.0.0.0/8", "172.16.0.0/12"])
DEMO_NETWORK_CIDR = env.str("DEMO_NETWORK_CIDR", default="10.20.1.0/24")
# Key for secrets stored at rest (hypervisor credentials); derived from SECRET_KEY in development
# only: production refuses to start without its own key (one leaked SECRET_KEY must not open both).
FIELD_ENCRYPTION_KEY = env.str("FIELD_ENCRYPTION_KEY", default="")
AUDIT_HMAC_KEY = env.str("AUDIT_HMAC_KEY", default="")
if PRODUCTION:
    if not AUDIT_HMAC_KEY or AUDIT_HMAC_KEY == SECRET_KEY:
        raise ImproperlyConfigured(
            "DJANGO_ENV=production needs AUDIT_HMAC_KEY (not SECRET_KEY) for the audit hash chain."
        )
    if not FIELD_ENCRYPTION_KEY or FIELD_ENCRYPTION_KEY == SECRET_KEY:
        raise ImproperlyConfigured(
            "DJANGO_ENV=production needs FIELD_ENCRYPTION_KEY (not SECRET_KEY) for secrets stored at rest."
        )

DEMO_PASSWORD_DEFAULT = "Demo@2026!"  # public (README): seed_demo refuses it in production
DEMO_PASSWORD = env.str("DEMO_PASSWORD", default=DEMO_PASSWORD_DEFAULT)
DEMO_TOTP_SECRET = env.str("DEMO_TOTP_SECRET", default="")

# --- Login security and audit (owned by the audit app; 等保 身份鉴别 / 安全审计) ---------------
# Thresholds (lockout, idle timeout, password age...) live in audit.models.SecurityPolicy,
# which the security admin edits within the platform floor (audit.policy.FLOOR).
INSTALLED_APPS += ["axes", "django_otp", "django_otp.plugins.otp_totp", "django_otp.plugins.otp_static"]
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "audit.middleware.ContentSecurityPolicyMiddleware",
)
_after_messages = MIDDLEWARE.index("django.contrib.messages.middleware.MessageMiddleware") + 1
MIDDLEWARE[_after_messages:_after_messages] = [
    "django_otp.middleware.OTPMiddleware",
    "audit.middleware.IdleTimeoutMiddleware",
    "audit.middleware.SecondFactorMiddleware",
    "audit.middleware.PasswordExpiryMiddleware",
]
MIDDLEWARE.append("axes.middleware.AxesMiddleware")  # axes wants to be last
AUTHENTICATION_BACKENDS.insert(0, "axes.backends.AxesStandaloneBackend")
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "audit.password_validation.PolicyMinimumLengthValidator"},
    {"NAME": "audit.password_validation.CharacterClassesValidator"},
    {"NAME": "audit.password_validation.NotUsernameValidator"},
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "audit.password_validation.PasswordHistoryValidator"},
]
# Argon2id at OWASP's parameters (see audit/hashers.py); the others verify older hashes, which
# Django re-hashes with the first one at the next login.
PASSWORD_HASHERS = [
    "audit.hashers.CampusArgon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = "audit.policy.axes_failure_limit"  # 5 failures by default
AXES_COOLOFF_TIME = "audit.policy.axes_cooloff"  # 30 minutes by default
AXES_LOCKOUT_PARAMETERS = ["username"]  # per account: locking a campus NAT address would lock a whole lab
SILENCED_SYSTEM_CHECKS = [*globals().get("SILENCED_SYSTEM_CHECKS", []), "axes.W006"]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "audit.views.lockout_response"
AXES_VERBOSE = False
# TOTP (django-otp) for platform admins, finance and auditors; False only for emergencies.
SECOND_FACTOR_REQUIRED = env.bool("SECOND_FACTOR_REQUIRED", default=True)
OTP_TOTP_ISSUER = "CampusCloud"
# Platform floor overrides {"field": (min, max)}; may only tighten audit.policy.FLOOR.
SECURITY_POLICY_FLOOR = {}
SESSION_ENGINE = "django.contrib.sessions.backends.db"  # logout deletes the row: ended on the server
# Where `archive_audit` writes its signed files.
AUDIT_ARCHIVE_DIR = env.path("AUDIT_ARCHIVE_DIR", default=BASE_DIR / "var" / "audit-archive")
# A file an external backup job touches after each successful backup (等保 数据备份恢复 check).
BACKUP_STATUS_FILE = env.str("BACKUP_STATUS_FILE", default="")
ADMINS = [("Security", addr) for addr in env.list("SECURITY_ALERT_EMAILS", default=[])]
# Content-Security-Policy: enforced in production, report-only in development.
CONTENT_SECURITY_POLICY = env.str(
    "CONTENT_SECURITY_POLICY",
    default="default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'self'; base-uri 'self'; "
    "form-action 'self'; object-src 'none'",
)
CONTENT_SECURITY_POLICY_ENFORCED = PRODUCTION
CONTENT_SECURITY_POLICY_EXEMPT = ("/api/docs/",)  # Swagger UI starts with an inline script
# --- end of login security and audit --------------------------------------------------------

# --- Campus sign-in (tenants.identity; names fixed in CONTRACT.md) ----------------------------
# CAS (django-cas-ng) when CAS_SERVER_URL is set; LDAP/AD (django-auth-ldap) when LDAP_SERVER_URI is
# set. Both may be on at once; local accounts always work (break-glass). README: "Campus sign-in".
CAS_SERVER_URL = env.str("CAS_SERVER_URL", default="")
CAS_VERSION = env.str("CAS_VERSION", default="3")
CAS_ONLY = env.bool("CAS_ONLY", default=False)  # the login page offers nothing but the CAS button
CAS_NUMBER_ATTRIBUTE = env.str("CAS_NUMBER_ATTRIBUTE", default="employeeNumber")
CAS_MFA_ATTRIBUTE = env.str("CAS_MFA_ATTRIBUTE", default="authnContextClass")
CAS_MFA_VALUES = env.list("CAS_MFA_VALUES", default=["mfa-totp", "mfa-duo", "mfa-gauth", "mfa-webauthn", "mfa-u2f"])
CAS_TIMEOUT = env.float("CAS_TIMEOUT", default=5.0)
CAS_RENEW = env.bool("CAS_RENEW", default=False)
CAS_CREATE_USER = False  # tenants.identity matches and provisions; django-cas-ng never creates users
CAS_STORE_NEXT = True
CAS_LOGIN_MSG = None
CAS_LOGGED_MSG = None
CAS_LOGOUT_COMPLETELY = True
CAS_REDIRECT_URL = "/"
LDAP_SERVER_URI = env.str("LDAP_SERVER_URI", default="")
LDAP_BIND_DN = env.str("LDAP_BIND_DN", default="")
LDAP_BIND_PASSWORD = env.str("LDAP_BIND_PASSWORD", default="")
LDAP_USER_BASE = env.str("LDAP_USER_BASE", default="")
LDAP_USER_FILTER = env.str("LDAP_USER_FILTER", default="(uid=%(user)s)")
LDAP_NUMBER_ATTR = env.str("LDAP_NUMBER_ATTR", default="employeeNumber")
LDAP_START_TLS = env.bool("LDAP_START_TLS", default=False)
LDAP_CA_FILE = env.str("LDAP_CA_FILE", default="")  # CA bundle for StartTLS / ldaps://
LDAP_GROUP_BASE = env.str("LDAP_GROUP_BASE", default="")
LDAP_TIMEOUT = env.float("LDAP_TIMEOUT", default=5.0)
# Which attribute holds what, for either directory: {"name": ..., "email": ..., "department": ...}.
DIRECTORY_ATTRIBUTES = env.json(
    "DIRECTORY_ATTRIBUTES", default={"name": "cn", "email": "mail", "department": "departmentNumber"}
)
# A directory group (cn) -> "tenant-slug:role", granted at each sign-in (e.g. {"cs-teachers": "cs:teacher"}).
DIRECTORY_GROUP_ROLES = env.json("DIRECTORY_GROUP_ROLES", default={})
# The audit log's "source" of a sign-in, by the backend that authenticated it (audit.signals).
AUTH_SOURCE_BY_BACKEND = {
    "tenants.identity.backends.LocalBackend": "local",
    "tenants.identity.backends.CampusCASBackend": "cas",
    "tenants.identity.backends.CampusLDAPBackend": "ldap",
}
# API tokens: lifetime of a person's token from POST /api/v1/auth/token/ (one per device, named, revocable).
API_TOKEN_HOURS = env.int("API_TOKEN_HOURS", default=12)
REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"][0] = "tenants.identity.tokens.ApiTokenAuthentication"
# A person's API tokens end with the password they were issued under (every way of changing it).
AUTH_PASSWORD_VALIDATORS.append({"NAME": "tenants.identity.tokens.TokensEndOnPasswordChange"})
# Always listed: each backend answers only when its server is configured (tests switch them on).
INSTALLED_APPS.append("django_cas_ng")
AUTHENTICATION_BACKENDS += [
    "tenants.identity.backends.CampusCASBackend",
    "tenants.identity.backends.CampusLDAPBackend",
]
# --- end of campus sign-in -------------------------------------------------------------------

# --- HA (compute/ha/): a host silent this long (no agent heartbeat, no libvirt probe) is fenced --------
HA_DETECTION_SECONDS = env.int("HA_DETECTION_SECONDS", default=15)
HA_TICK_SECONDS = env.float("HA_TICK_SECONDS", default=3.0)
HA_PROBE_TIMEOUT = env.float("HA_PROBE_TIMEOUT", default=3.0)
HA_IPMI_TIMEOUT = env.float("HA_IPMI_TIMEOUT", default=10.0)
HA_RESTART_PARALLEL = env.int("HA_RESTART_PARALLEL", default=4)
HA_RETRY_SECONDS = env.float("HA_RETRY_SECONDS", default=30.0)
# --- end of HA -------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

PORTAL_NAME = _("CampusCloud 校园云")
