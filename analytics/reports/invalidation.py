"""Which report runs a write makes stale: data-version tokens per study and per (study, site).

A report run is cached under the tokens of what feeds it (``report_fingerprint``): the registry-wide
token (reference data such as protocols), its study's own token (the study record) and, for the
patients it reads, either the study's patient token (a viewer who sees every site) or one token per
(study, site) the viewer may report on. Registry's write hooks (``ReportInvalidation``, registered in
``AnalyticsConfig.ready``) replace the tokens a write touches, so a write to an LM patient leaves
every NPSLE run cached and a write at one site leaves the runs of viewers scoped to other sites.

Tokens live in the shared cache (Redis in a deployment, a file cache for ``make run``). A token is a
random string, never a counter: a token lost to eviction or a cache flush comes back as a new random
value, which can only make a run miss, never hit a stale one. Each write replaces its tokens twice:
inside its transaction (so a run computed before the write sees the old token) and again on commit
(so a run computed while the write was uncommitted, from the old data, is not kept under the token
the write set first).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from weakref import WeakKeyDictionary

from django.core.cache import cache
from django.db import models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from registry.models import Patient, ScreeningLogEntry, Study
from registry.write_hooks import WriteGuard

_PREFIX = "reports:data-version:"
#: Reference data every report may read (protocols, formulations): not tied to one study.
REGISTRY = f"{_PREFIX}registry"


def study_key(study_id: int) -> str:
    """The study record itself (its title, its sites)."""
    return f"{_PREFIX}study:{study_id}"


def patients_key(study_id: int) -> str:
    """Any patient record of the study, at any site."""
    return f"{_PREFIX}study:{study_id}:patients"


def site_key(study_id: int, site_id: int) -> str:
    """The patient records of the study at one site."""
    return f"{_PREFIX}study:{study_id}:site:{site_id}"


def _tokens(keys: Sequence[str]) -> list[str]:
    """The current token of each key; a missing one gets a fresh random token (never a reused value)."""
    found = cache.get_many(keys)
    missing = {key: uuid.uuid4().hex for key in keys if key not in found}
    for key, token in missing.items():
        # add() keeps a token another process set meanwhile; read back whichever won.
        if not cache.add(key, token, timeout=None):
            missing[key] = cache.get(key) or token
    return [found.get(key) or missing[key] for key in keys]


def report_fingerprint(study_id: int, site_ids: Sequence[int] | None) -> str:
    """The tokens of everything a report of this study, for these sites (None: all), reads."""
    keys = [REGISTRY, study_key(study_id)]
    if site_ids is None:
        keys.append(patients_key(study_id))
    else:
        keys.extend(site_key(study_id, site_id) for site_id in sorted(site_ids))
    connection = transaction.get_connection()
    pending = _scheduled(connection) if connection.in_atomic_block else None
    if pending is not None:
        pending.replaced.clear()  # a run of this transaction's data: its next writes replace again
    return ".".join(_tokens(keys))


def _replace(keys: Iterable[str]) -> None:
    cache.set_many({key: uuid.uuid4().hex for key in keys}, timeout=None)


class _OnCommit:
    """The keys a transaction's writes touched, replaced once when it commits (not once per write),
    and the (study, site) of the patients whose records it wrote, read once per transaction."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.owners: dict[int, tuple[int, int]] = {}
        #: Replaced in the cache since this transaction last read a fingerprint (``invalidate``).
        self.replaced: set[str] = set()

    def __call__(self) -> None:
        _replace(sorted(self.keys))


#: Each connection's replacement for its current transaction (a connection is one thread's).
_PENDING: WeakKeyDictionary[BaseDatabaseWrapper, _OnCommit] = WeakKeyDictionary()


def _pending(connection: BaseDatabaseWrapper) -> _OnCommit:
    """This transaction's one on-commit replacement, scheduled by its first write.

    A rolled-back transaction or savepoint drops its callbacks, so the one kept for the connection
    is reused only while Django still holds it in ``run_on_commit``.
    """
    pending = _scheduled(connection)
    if pending is None:
        pending = _PENDING[connection] = _OnCommit()
        transaction.on_commit(pending, using=connection.alias)
    return pending


def _scheduled(connection: BaseDatabaseWrapper) -> _OnCommit | None:
    """The connection's replacement, if its transaction still holds it (no rolled-back savepoint took it)."""
    pending = _PENDING.get(connection)
    if pending is None or not any(func is pending for _, func, *_ in connection.run_on_commit):
        return None
    return pending


def _transaction() -> _OnCommit | None:
    """The current transaction's pending replacement (None in autocommit)."""
    connection = transaction.get_connection()
    return _pending(connection) if connection.in_atomic_block else None


def invalidate(keys: Iterable[str]) -> None:
    """Replace these tokens now and again when the current transaction commits.

    A token this transaction already replaced is not replaced again before the commit, unless
    the transaction has read a fingerprint since (a run it computed itself saw its writes so far):
    a run computed elsewhere meanwhile read the data without this transaction's writes, and the
    replacement on commit makes it unreachable all the same. The LM demo's 41 patients make
    ~3,000 writes in 41 transactions, each of which replaced its tokens in the cache again.
    """
    keys = set(keys)
    pending = _transaction()
    fresh = keys if pending is None else keys - pending.replaced
    if fresh:
        _replace(sorted(fresh))
    if pending is not None:
        pending.replaced |= fresh
        pending.keys |= keys


def _patient_keys(owners: Iterable[tuple[int, int]]) -> set[str]:
    keys: set[str] = set()
    for study_id, site_id in owners:
        keys |= {patients_key(study_id), site_key(study_id, site_id)}
    return keys


def _owners_of(patient_ids: Iterable[int | None]) -> set[tuple[int, int]]:
    """The (study, site) of these patients, each read once per transaction: a transaction writing
    many records of one patient asked the database the same question for each (a fifth of the LM
    demo's load). A patient's own write forgets its entry (``_forget_owner``); the tokens of where
    a patient sat before a move are replaced on commit anyway (``keys_for``'s ``stored``)."""
    ids = {pk for pk in patient_ids if pk is not None}
    if not ids:
        return set()
    pending = _transaction()
    known: dict[int, tuple[int, int]] = {} if pending is None else pending.owners
    missing = ids - known.keys()
    if missing:
        rows = Patient.objects.filter(pk__in=missing).order_by().values_list("pk", "study_id", "site_id")
        known.update((pk, (study_id, site_id)) for pk, study_id, site_id in rows)
    return {known[pk] for pk in ids if pk in known}


def _forget_owner(patient_id: int) -> None:
    pending = _transaction()
    if pending is not None:
        pending.owners.pop(patient_id, None)


def _stored_owner(record: models.Model) -> set[tuple[int, int]]:
    """The (study, site) an already saved patient or screening entry belongs to in the database."""
    if record.pk is None:
        return set()
    return set(
        type(record)._default_manager.filter(pk=record.pk).order_by().values_list("study_id", "site_id")
    )


def keys_for(record: models.Model, *, stored: bool) -> set[str]:
    """The tokens a write to this record touches; ``stored`` adds where it sat before the write."""
    if isinstance(record, Study):
        return {study_key(record.pk)} if record.pk is not None else set()
    if isinstance(record, (Patient, ScreeningLogEntry)):
        if isinstance(record, Patient) and record.pk is not None:
            _forget_owner(record.pk)  # the write may move the patient: its records' writes read it again
        owners = {(record.study_id, record.site_id)}
        if stored:
            owners |= _stored_owner(record)
        return _patient_keys(owners)
    owning = getattr(record, "owning_patient_id", None)
    if getattr(record, "patient_lookup", None) is None or owning is None:
        return {REGISTRY}
    return _patient_keys(_owners_of([owning()]))


def keys_for_batch(records: Sequence[models.Model]) -> set[str]:
    """The tokens a bulk insert of these new records touches (one query for the whole batch)."""
    if not records:
        return set()
    first = records[0]
    if isinstance(first, (Patient, ScreeningLogEntry, Study)):
        return set().union(*(keys_for(record, stored=False) for record in records))
    if getattr(first, "patient_lookup", None) is None:
        return {REGISTRY}
    return _patient_keys(_owners_of(record.owning_patient_id() for record in records))  # type: ignore[attr-defined]


class ReportInvalidation(WriteGuard):
    """Registry's write hooks replacing the data-version tokens of what each write touches."""

    def check(self, record, *, deleting: bool) -> None:
        # Before the write, so where the record sat counts too (a patient moved to another site
        # stales both); a new study has no runs to stale.
        invalidate(keys_for(record, stored=True))

    def before_batch(self, model, records) -> None:
        invalidate(keys_for_batch(records))
