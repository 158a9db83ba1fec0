"""Where a model artifact lives, and how a replica gets it onto its own disk.

``fetch_artifact(location, sha256)`` takes a version's ``artifact`` and returns a local path a
runtime can load:

* **A local path** or a ``file://`` URI (``file:///abs/path``, host empty or ``localhost``) is
  returned in place, never copied. A missing file is a ``FileNotFoundError`` naming it (as
  for every runtime).
* **An object-store URI**, ``s3://bucket/key`` or ``gs://bucket/key`` (``gcs://`` is the same),
  is fetched with fsspec (s3fs, gcsfs) into a per-node cache and the cached copy's path is
  returned. Credentials and the endpoint come from the standard environment of the process
  (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ...;
  ``GOOGLE_APPLICATION_CREDENTIALS`` or the metadata server), never from the spec.
* Any other scheme is a ``ConfigError`` naming the URI and the supported schemes, and so is a
  URI without a bucket or key, or with ``.``/``..``/empty path segments.

What is guaranteed:

* With ``sha256``, the returned file's SHA-256 is ``sha256`` at the time of the call: a local
  file is hashed in place; a cached copy is hashed again on every reuse (a damaged entry is
  fetched again); a download is hashed before it enters the cache. A mismatch is a
  ``ModelLoadError`` naming the URI, the expected and the actual digest, and the bad download
  is deleted.
* A cache entry appears whole or not at all: the object is downloaded to a temporary file in
  the cache, flushed, verified, then renamed into place (``os.replace``, atomic on one file
  system). A crash leaves only a temporary file, removed by the next fetch of that entry.
* Replicas on one node that want the same entry at the same time download it once: the fetch
  holds an exclusive ``fcntl.flock`` on the entry's lock file; the others wait, then reuse it.
* An entry is keyed by ``sha256`` when given (content-addressed: no network call on a hit).
  Otherwise it is keyed by the URI and what the store reports of the object (size, ETag,
  modification time, generation, version id), so a changed object is fetched again.
* A missing object or bucket, access denied, missing credentials or any other failure of the
  store is a ``ModelLoadError`` naming the URI. A missing optional library (s3fs, gcsfs) is a
  ``ModelRuntimeError`` saying which extra to install.

The cache is ``cache_dir`` if given, else ``$RAYROLLOUT_ARTIFACT_CACHE``, else
``<tempdir>/rayrollout-artifacts-<uid>`` (created ``0700``; refused if another user owns it).
It is never pruned by rayrollout: an object changed under an unpinned URI leaves its older
copy behind, to be deleted by the operator while no replica is starting.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from rayrollout.errors import ConfigError, ModelLoadError, ModelRuntimeError

CACHE_ENV = "RAYROLLOUT_ARTIFACT_CACHE"

# scheme -> (fsspec protocol, library, extra of rayrollout that installs it)
OBJECT_STORES: dict[str, tuple[str, str, str]] = {
    "s3": ("s3", "s3fs", "s3"),
    "gs": ("gs", "gcsfs", "gcs"),
    "gcs": ("gs", "gcsfs", "gcs"),
}
SCHEMES = ("file", *OBJECT_STORES)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,221}$")  # S3's and GCS's bucket names
# What a store reports of an object that changes when the object does (s3fs, gcsfs, local).
_VERSION_FIELDS = ("ETag", "etag", "LastModified", "mtime", "updated", "generation",
                   "VersionId", "md5Hash", "crc32c")
_T = TypeVar("_T")
# Environment variables that choose a store's endpoint and credentials.
_STORE_ENV_PREFIXES = ("AWS_", "BOTO_", "GOOGLE_", "GCS", "GCLOUD", "CLOUDSDK_", "FSSPEC_")
_FILESYSTEMS: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
_FILESYSTEMS_LOCK = threading.Lock()


@dataclass(frozen=True)
class ObjectURI:
    """An object-store URI taken apart; ``scheme`` as the user wrote it, in lower case."""

    scheme: str
    bucket: str
    key: str



def uri_scheme(location: str) -> str | None:
    """The scheme of a URI in lower case (``s3``, ``file``...), or None for a plain path.
    Anything with ``://`` is a URI (as ``VersionConfig.artifact_uri`` says), so a chained
    fsspec URL (``simplecache::s3://...``) is a URI of an unsupported scheme, not a path."""
    if "://" not in location:
        return None
    return location.split("://", 1)[0].lower()


def _refuse(field: str, location: str, why: str) -> ConfigError:
    return ConfigError(f"{field}={location[:200]!r}: {why}")


def local_path(location: str, field: str = "artifact") -> Path:
    """The local path a plain path or a ``file://`` URI names (percent-escapes decoded).
    ``ConfigError`` naming ``field`` and the URI for a ``file://`` URI with another host, a
    query or a fragment."""
    if uri_scheme(location) != "file":
        return Path(location)
    parts = urlsplit(location)
    if parts.netloc not in ("", "localhost"):
        raise _refuse(field, location, f"a file:// URI names this machine; host {parts.netloc!r} "
                      "is not empty or localhost")
    if parts.query or parts.fragment or not parts.path.startswith("/"):
        raise _refuse(field, location, "a file:// URI is file:///absolute/path (escape '?' and '#' "
                      "as %3F and %23)")
    return Path(unquote(parts.path))


def parse_object_uri(location: str, field: str = "artifact") -> ObjectURI:
    """``s3://bucket/key`` or ``gs://bucket/key`` taken apart; ``ConfigError`` naming ``field``
    and the URI for another scheme, a missing bucket or key, control characters, or a ``.``,
    ``..`` or empty segment in the key (stores and HTTP clients disagree on what those mean)."""
    scheme = uri_scheme(location)
    if scheme is None or scheme not in OBJECT_STORES:
        raise _refuse(field, location, f"unsupported scheme {(scheme or '')[:50]!r}; supported: "
                      f"a path, or {', '.join(s + '://' for s in SCHEMES)}")
    if _CONTROL.search(location):
        raise _refuse(field, location, "control characters are not allowed")
    rest = location.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    if not bucket or not key:
        raise _refuse(field, location, f"give {scheme}://bucket/key")
    if not _BUCKET.match(bucket):
        raise _refuse(field, location, f"{bucket[:100]!r} is not a bucket name (letters, "
                      "digits, '.', '-', '_'; no user, password or port)")
    if any(seg in ("", ".", "..") for seg in key.split("/")):
        raise _refuse(field, location, "the key may not have '.', '..' or empty segments")
    return ObjectURI(scheme, bucket, key)


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$RAYROLLOUT_ARTIFACT_CACHE``, else ``<tempdir>/rayrollout-artifacts-<uid>``."""
    env = os.environ if environ is None else environ
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV])
    return Path(tempfile.gettempdir()) / f"rayrollout-artifacts-{os.getuid()}"


def fetch_artifact(location: str, sha256: str | None = None, *,
                   cache_dir: Path | None = None) -> Path:
    """A local path to the artifact at ``location`` (a path or a URI), checked against
    ``sha256`` when given. See the module docstring for what is guaranteed."""
    if uri_scheme(location) in (None, "file"):
        return _local(location, sha256)
    uri = parse_object_uri(location)
    fs = _filesystem(location, uri.scheme)
    return _cached_fetch(location, fs, f"{uri.bucket}/{uri.key}", sha256,
                         _cache_root(cache_dir))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()  # (hashlib.file_digest is Python 3.11+)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _local(location: str, sha256: str | None) -> Path:
    path = local_path(location)
    if not path.exists():
        raise FileNotFoundError(f"model artifact not found: {str(path)!r}")
    if sha256 is not None:
        if not path.is_file():
            raise ModelLoadError(f"artifact {location!r}: sha256 checks a file, and this is "
                                 "not a regular file")
        _check_digest(location, sha256, file_sha256(path))
    return path


def _check_digest(uri: str, expected: str, actual: str) -> None:
    if actual != expected:
        raise ModelLoadError(f"artifact {uri!r} has sha256 {actual}, expected {expected}")


def _filesystem(location: str, scheme: str) -> Any:
    """The fsspec file system of ``scheme`` for the process's environment as it is now: one
    per protocol and set of store variables (``AWS_*``, ``GOOGLE_*``...), so a changed
    endpoint or key gets a new one (fsspec's own instance cache ignores the environment)."""
    import fsspec

    protocol, library, extra = OBJECT_STORES[scheme]
    try:
        cls = fsspec.get_filesystem_class(protocol)
    except ImportError as e:
        raise ModelRuntimeError(
            f"artifact {location!r} needs {library}, which is not installed here: "
            f"pip install 'rayrollout[{extra}]'") from e
    key = (protocol, tuple(sorted((k, v) for k, v in os.environ.items()
                                  if k.startswith(_STORE_ENV_PREFIXES))))
    with _FILESYSTEMS_LOCK:
        if key not in _FILESYSTEMS:
            _FILESYSTEMS[key] = _store(location, lambda: cls(skip_instance_cache=True))
        return _FILESYSTEMS[key]


def _cache_root(cache_dir: Path | None) -> Path:
    if cache_dir is not None or os.environ.get(CACHE_ENV):
        root = cache_dir if cache_dir is not None else default_cache_dir()
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return root
    root = default_cache_dir()
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o700)
    st = root.lstat()  # in a shared temporary directory: ours, a directory, private
    if not root.is_dir() or root.is_symlink() or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise ModelRuntimeError(
            f"artifact cache {str(root)!r} is not a private directory of this user; remove it "
            f"or set {CACHE_ENV}")
    return root


@contextlib.contextmanager
def _locked(lock: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``lock``: between processes, and between threads (each
    holds its own open file description)."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _cached_fetch(uri: str, fs: Any, rpath: str, sha256: str | None, root: Path) -> Path:
    """Fetch ``rpath`` of file system ``fs`` (named ``uri`` in errors) into cache ``root``,
    or reuse the entry there. The seam the unit tests drive with a local file system."""
    if sha256 is not None:
        key = f"sha256-{sha256}"
    else:
        key = f"uri-{_version_key(uri, _store(uri, lambda: fs.info(rpath)))}"
    entry = root / key
    target = entry / _file_name(rpath)
    if _usable(target, sha256):
        return target
    with _locked(root / f"{key}.lock"):
        if _usable(target, sha256):  # another replica fetched it while we waited
            return target
        entry.mkdir(mode=0o700, exist_ok=True)
        for stale in entry.glob(".part-*"):  # left by a fetch that died; we hold the lock
            stale.unlink(missing_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".part-", dir=entry)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            _store(uri, lambda: fs.get_file(rpath, tmp_name))
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            if sha256 is not None:
                _check_digest(uri, sha256, file_sha256(tmp))
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # only if empty: a failed fetch leaves nothing
                entry.rmdir()
            raise
    return target


def _usable(target: Path, sha256: str | None) -> bool:
    """Whether the cache entry exists and (with ``sha256``) still has that digest. A damaged
    one stays until a fetch under the lock replaces it (``os.replace``), so no replica ever
    loses a file another has just been handed."""
    return target.is_file() and (sha256 is None or file_sha256(target) == sha256)


def _store(uri: str, call: Callable[[], _T]) -> _T:
    """Run one call to the store, its failures translated to ``ModelLoadError`` naming the
    URI."""
    try:
        return call()
    except FileNotFoundError as e:
        raise ModelLoadError(f"artifact {uri!r} not found in the store ({e})") from e
    except PermissionError as e:
        raise ModelLoadError(f"artifact {uri!r}: access denied ({e})") from e
    except Exception as e:
        raise ModelLoadError(f"artifact {uri!r} could not be fetched: "
                             f"{type(e).__name__}: {e}") from e


def _version_key(uri: str, info: Mapping[str, Any]) -> str:
    if info.get("type", "file") != "file":
        raise ModelLoadError(f"artifact {uri!r} is a {info.get('type')}, not an object")
    seen = {k: str(info[k]) for k in _VERSION_FIELDS if info.get(k) is not None}
    blob = json.dumps([uri, info.get("size"), seen], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:40]


def _file_name(rpath: str) -> str:
    """The object's own name, so a runtime that looks at the suffix sees it (``.onnx``)."""
    name = rpath.rstrip("/").rsplit("/", 1)[-1]
    if name in ("", ".", "..") or len(name.encode()) > 200:
        return "artifact" + Path(name).suffix[:32]
    return name
