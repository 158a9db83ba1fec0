"""Which store a target names: ``open_store`` and ``describe_store`` (paths, ``sqlite://``,
``postgresql://``, the environment, the default), and the spec fields that carry a target
(``store_path``, ``store_url``: no password, not both)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from rayrollout.controller.pgstore import PostgresStore
from rayrollout.controller.store import STORE_URL_ENV, Store, describe_store, open_store
from rayrollout.errors import ConfigError
from rayrollout.spec import RolloutSpec
from rayrollout.spec.base import format_validation_error
from rayrollout.spec.serving import RouterConfig
from tests.unit.controller.conftest import Stores
from tests.unit.controller.helpers import spec_doc


def test_paths_and_sqlite_urls_open_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for target, path in ((str(tmp_path / "a.db"), tmp_path / "a.db"),
                         (f"sqlite://{tmp_path}/b.db", tmp_path / "b.db"),
                         ("~/c.db", tmp_path / "home" / "c.db")):
        s = open_store(target, "m")
        assert isinstance(s, Store) and s.path == path and path.exists()
        s.close()
        assert describe_store(target) == {"kind": "sqlite", "node_local": True,
                                          "where": str(path)}


def test_postgresql_urls_open_postgres(pg_stores: Stores) -> None:
    for url in (pg_stores.target, pg_stores.target.replace("postgresql://", "postgres://")):
        s = open_store(url, "m")
        assert isinstance(s, PostgresStore) and s.verify()[0]
        s.close()
    d = describe_store("postgresql://ops:s3cret@db.internal:5432/rollouts?sslmode=require")
    assert d == {"kind": "postgresql", "node_local": False,
                 "where": "postgresql://ops@db.internal:5432/rollouts?sslmode=require"}
    d = describe_store("postgres://db/rollouts?password=s3cret&sslmode=require")
    assert "s3cret" not in d["where"] and d["where"].endswith("?sslmode=require")


def test_no_target_is_the_environment_s_url_else_the_model_s_file(
    pg_stores: Stores, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(STORE_URL_ENV, raising=False)
    assert describe_store(None, "m") == {"kind": "sqlite", "node_local": True,
                                         "where": str(tmp_path / ".rayrollout" / "m.db")}
    s = open_store(None, "m")
    assert isinstance(s, Store) and s.path == tmp_path / ".rayrollout" / "m.db"
    s.close()
    monkeypatch.setenv(STORE_URL_ENV, pg_stores.target)
    assert describe_store(None, "m")["kind"] == "postgresql"
    s = open_store(None, "m")
    assert isinstance(s, PostgresStore) and s.where == pg_stores.target
    s.close()


@pytest.mark.parametrize("target", ["mysql://db/x", "http://example.com/x.db", "sqlite://"])
def test_another_kind_of_url_is_a_config_error(target: str) -> None:
    with pytest.raises(ConfigError, match="store"):
        open_store(target, "m")
    with pytest.raises(ConfigError):
        describe_store(target)


# -- the spec fields ---------------------------------------------------------------------------


def errors_of(doc: dict[str, object], model: Any = RolloutSpec) -> str:
    with pytest.raises(ValidationError) as e:
        model.model_validate(doc)
    return format_validation_error(e.value)


ROUTER = {"model": "m", "weights": {"v1": 100.0}}


@pytest.mark.parametrize("model", [RolloutSpec, RouterConfig])
def test_store_url_and_store_target(model: Any) -> None:
    base = spec_doc() if model is RolloutSpec else ROUTER
    url = "postgresql://rollouts@db.internal:5432/rollouts?sslmode=require"
    assert model.model_validate({**base, "store_url": url}).store_target() == url
    assert model.model_validate({**base, "store_path": "/data/m.db"}).store_target() == (
        "/data/m.db")
    assert model.model_validate(base).store_target() is None


@pytest.mark.parametrize("model", [RolloutSpec, RouterConfig])
@pytest.mark.parametrize(("extra", "says"), [
    ({"store_url": "postgresql://ops:hunter22@db/rollouts"}, "carries a password"),
    ({"store_url": "postgres://db/rollouts?sslmode=require&password=hunter22"},
     "carries a password"),
    ({"store_url": "mysql://db/rollouts"}, "not a postgresql:// URL"),
    ({"store_url": "postgresql://db/a b"}, "no spaces"),
    ({"store_url": "postgresql://db/r", "store_path": "/data/m.db"}, "exclusive"),
])
def test_a_bad_store_url_names_the_field_and_never_shows_a_password(
    model: Any, extra: dict[str, str], says: str
) -> None:
    text = errors_of({**(spec_doc() if model is RolloutSpec else ROUTER), **extra}, model)
    assert text.startswith("store_url: ") and says in text, text
    assert "hunter22" not in text
