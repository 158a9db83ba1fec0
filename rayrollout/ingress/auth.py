"""Who may do what on the router: bearer tokens with scopes.

A token is configured by name, never in a config or a spec (those are stored, and Serve shows
an application's arguments to anyone who can read its config): it comes from the router's
environment (the variable named by ``RouterConfig.admin_tokens_env``) or from a file
(``RouterConfig.tokens_file``) that only its owner can read. Entries are
``name:token`` (every scope) or ``name/scope+scope:token``, separated by commas or new
lines (a token may hold a colon, not a comma).

Scopes, and the routes they open::

    read      GET  /rollout/status, verbs, history, verify, replay (and the status page's data)
    operate   read, and POST /rollout/<verb> (pause, resume, approve, promote, abort, ...)
    admin     operate, and POST /rollout/start; also feedback
    feedback  POST /v1/models/<model>/feedback (labels for served requests), nothing else

Guarantees:

* Only SHA-256 digests of tokens are kept; a sent token is compared with every configured one
  in constant time (no early exit), so neither a match nor a token's length shows in timing.
* No token configured: every guarded route answers 401 and says how to configure one.
  A valid token without the route's scope: 403 naming the scope; never a hint about others.
* The NAME of the matching token is what the decision log and the label join record.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rayrollout._compat import StrEnum
from rayrollout.errors import ConfigError, Forbidden, Unauthorized

log = logging.getLogger("rayrollout.auth")


class Scope(StrEnum):
    READ = "read"
    OPERATE = "operate"
    ADMIN = "admin"
    FEEDBACK = "feedback"


# What each scope a token is given lets it do.
GRANTS: dict[Scope, frozenset[Scope]] = {
    Scope.READ: frozenset({Scope.READ}),
    Scope.OPERATE: frozenset({Scope.READ, Scope.OPERATE}),
    Scope.ADMIN: frozenset(Scope),
    Scope.FEEDBACK: frozenset({Scope.FEEDBACK}),
}


@dataclass(frozen=True)
class Token:
    name: str
    digest: bytes
    grants: frozenset[Scope]


def digest(token: str) -> bytes:
    # Comparing fixed-length digests keeps even the token's length out of the timing.
    return hashlib.sha256(token.encode()).digest()


def parse_tokens(text: str, where: str = "tokens") -> list[Token]:
    """Entries ``name[/scope+scope]:token`` separated by commas or new lines (``#`` starts a
    comment line). A malformed entry, or one naming an unknown scope, is skipped with a
    warning that names its position and never its token."""
    out: list[Token] = []
    items = [i for line in text.splitlines() if not line.lstrip().startswith("#")
             for i in line.split(",")]
    for i, item in enumerate(x for x in items if x.strip()):
        who, sep, token = item.partition(":")
        name, slash, listed = (x.strip() for x in who.partition("/"))
        token = token.strip()
        if not sep or not name or not token:
            log.warning("%s: entry %d is not name[/scopes]:token; ignored", where, i)
            continue
        try:
            scopes = [Scope(s.strip()) for s in listed.split("+")] if slash else [Scope.ADMIN]
        except ValueError:
            log.warning("%s: entry %d (%s) names a scope that is not one of %s; ignored",
                        where, i, name, "+".join(Scope))
            continue
        grants = frozenset().union(*(GRANTS[s] for s in scopes))
        out.append(Token(name, digest(token), grants))
    return out


def read_tokens_file(path: str) -> str:
    """The text of a tokens file, refused (``ConfigError``) unless it is a regular file that
    only its owner may read or write: a token readable by others is not a secret."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        raise ConfigError(f"tokens_file={path!r} cannot be read: {type(e).__name__}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"tokens_file={path!r} is not a regular file")
    if st.st_mode & 0o077:
        raise ConfigError(f"tokens_file={path!r} has mode {stat.S_IMODE(st.st_mode):04o}: "
                          "group or others may read it; chmod 600 it")
    return p.read_text(encoding="utf-8")


class Credentials:
    """The router's tokens; ``require(headers, scope)`` names who sent the request."""

    def __init__(self, tokens: list[Token], how_to: str = "") -> None:
        self.tokens = tokens
        self.how_to = how_to  # what to do when none is configured, for the 401's message

    @classmethod
    def load(cls, env_var: str, tokens_file: str | None,
             environ: Mapping[str, str] | None = None) -> Credentials:
        env = os.environ if environ is None else environ
        tokens = parse_tokens(env.get(env_var, ""), env_var)
        if tokens_file:
            tokens += parse_tokens(read_tokens_file(tokens_file), "tokens_file")
        how_to = (f"set {env_var}='name[/scope+scope]:token' in the router's environment or "
                  "name a tokens_file (mode 600) in the router config")
        return cls(tokens, how_to)

    def require(self, headers: Mapping[str, str], scope: Scope) -> str:
        """The name of the token in ``Authorization: Bearer <token>`` if it grants ``scope``:
        401 if none matches, 403 if it matches without the scope."""
        if not self.tokens:
            raise Unauthorized(f"this route needs a token with scope {scope.value!r} and none "
                               f"is configured: {self.how_to}")
        scheme, _, given = headers.get("authorization", "").partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            raise Unauthorized("missing token: send 'Authorization: Bearer <token>'")
        sent = digest(given)
        found: Token | None = None
        for t in self.tokens:
            if hmac.compare_digest(sent, t.digest) and found is None:
                found = t
        if found is None:
            raise Unauthorized("invalid token")
        if scope not in found.grants:
            raise Forbidden(f"token {found.name!r} lacks scope {scope.value!r}")
        return found.name
