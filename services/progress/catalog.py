"""Managers' definitions: tier programs, badges, streaks and challenges,
created and versioned by ApplyDefinition, archived, listed, and a draft tier
program dry-run over the recorded history."""

from __future__ import annotations

from dataclasses import replace

import structlog

from services.kit.errors import AlreadyExists, FailedPrecondition, NotFound, Violations
from services.kit.ids import check_id
from services.kit.paging import Page, decode_page_token, page_of, page_size
from services.progress.base import ProgressBase
from services.progress.domain.definitions import (
    DEFINITION_ID,
    Definition,
    Kind,
    Spec,
    State,
    TierProgram,
    check_definition,
    check_program,
)
from services.progress.domain.evaluate import program_standing
from services.progress.domain.records import ChangeReason, TierChange
from services.progress.store import SqliteProgressUnit

log = structlog.get_logger()

DRY_RUN_BATCH = 500


class CatalogUseCases(ProgressBase):
    async def apply(
        self,
        definition_id: str,
        spec: Spec | None,
        expected_version: int | None,
        violations: Violations | None = None,
    ) -> tuple[Definition, bool]:
        violations = violations or Violations()
        check_definition(violations, definition_id, spec)
        violations.raise_if_any()
        assert spec is not None
        now = self._clock.now_us()

        def work(unit: SqliteProgressUnit) -> tuple[Definition, bool]:
            current = unit.definition(definition_id)
            version = current.version if current else 0
            if expected_version is not None and expected_version != version:
                raise FailedPrecondition(
                    "VERSION_MISMATCH",
                    f"definition {definition_id} is at version {version}",
                    {"id": definition_id, "version": str(version)},
                )
            if current is None:
                definition = Definition(definition_id, 1, State.ACTIVE, spec, now, now)
            else:
                if type(current.spec) is not type(spec):
                    raise AlreadyExists(
                        "DEFINITION_KIND_MISMATCH",
                        f"{definition_id} is a {current.kind.value}; an id keeps its kind",
                        {"id": definition_id, "kind": current.kind.value},
                    )
                if current.spec == spec and current.active:
                    return current, False
                definition = replace(
                    current, version=version + 1, state=State.ACTIVE, spec=spec, update_us=now
                )
            unit.save_definition(definition)
            # Every member is placed again under the new rules by the review loop.
            if isinstance(spec, TierProgram):
                unit.review_program(definition_id, now)
            else:
                unit.evaluate_everyone(definition_id)
            return definition, True

        definition, changed = await self._store.write(work)
        if changed:
            log.info(
                "definition_applied",
                id=definition_id,
                kind=definition.kind.value,
                version=definition.version,
            )
        return definition, changed

    async def get(self, definition_id: str) -> Definition:
        _check(definition_id)
        found = await self._store.read(lambda unit: unit.definition(definition_id))
        if found is None:
            raise _not_found(definition_id)
        return found

    async def list(self, kind: Kind | None, requested: int, token: str) -> Page[Definition]:
        violations = Violations()
        size = page_size(violations, requested)
        violations.raise_if_any()
        query = ("definitions", kind.value if kind else "")
        after = decode_page_token(token, query, str) or ""
        rows = await self._store.read(lambda unit: unit.definitions(kind, after, size + 1))
        return page_of(rows, size, lambda d: d.definition_id, query)

    async def archive(self, definition_id: str) -> Definition:
        _check(definition_id)
        now = self._clock.now_us()

        def work(unit: SqliteProgressUnit) -> Definition:
            found = unit.definition(definition_id)
            if found is None:
                raise _not_found(definition_id)
            if not found.active:
                return found
            archived = replace(found, state=State.ARCHIVED, update_us=now)
            unit.save_definition(archived)
            if isinstance(found.spec, TierProgram):
                _announce_archived(unit, found.spec, definition_id, now)
            return archived

        archived = await self._store.write(work)
        self.commits.notify()
        return archived

    async def dry_run(
        self, program: TierProgram, as_of_us: int | None, violations: Violations | None = None
    ) -> tuple[dict, int, int]:
        """Members per tier under a draft program, from the recorded facts; nothing is written."""
        violations = violations or Violations()
        check_program(violations, program, "program")
        violations.raise_if_any()
        moment = self._clock.now_us() if as_of_us is None else as_of_us
        counts = {tier.tier_id: 0 for tier in program.tiers}
        members = events = 0
        after = ""
        while True:

            def work(unit: SqliteProgressUnit, after=after):
                batch = unit.members(after, DRY_RUN_BATCH)
                found = []
                for member_id in batch:
                    standing = program_standing(unit, member_id, program, None, moment)
                    found.append((member_id, standing.rank))
                return found

            found = await self._store.read(work)
            for _, rank in found:
                counts[program.tiers[rank].tier_id] += 1
            members += len(found)
            if len(found) < DRY_RUN_BATCH:
                break
            after = found[-1][0]
        events = await self._store.read(lambda unit: unit.journal_size())
        return counts, members, events


def _check(definition_id: str) -> None:
    violations = Violations()
    check_id(violations, "id", definition_id, DEFINITION_ID)
    violations.raise_if_any()


def _announce_archived(
    unit: SqliteProgressUnit, program: TierProgram, program_id: str, now: int
) -> None:
    """Members of an archived program hold none of its tiers: each holder's change
    to no tier goes on the feed, so followers (campaigns' targeting) drop it too."""
    tier_ids = tuple(tier.tier_id for tier in program.tiers)
    for held in unit.drop_program_tiers(program_id):
        if held.tier_id:
            unit.add_tier_change(
                TierChange(
                    0,
                    program_id,
                    held.member_id,
                    held.tier_id,
                    "",
                    False,
                    ChangeReason.PROGRAM_ARCHIVED.value,
                    now,
                    None,
                    tier_ids,
                )
            )


def _not_found(definition_id: str) -> NotFound:
    return NotFound("DEFINITION_NOT_FOUND", f"no definition {definition_id}", {"id": definition_id})
