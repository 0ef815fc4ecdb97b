"""Code pools: importing a CSV file chunk by chunk, and generating codes.

An import is a series of ImportCodes calls, each at most MAX_LINES lines, so
memory stays bounded on both sides whatever the file's size. Each chunk is one
transaction, idempotent by (reward, import id, first line): a retried chunk
gets its first answer. A code already in the pool from this import is a
duplicate in the file (the answer names the line that had it first); from
another import, a duplicate against the pool. Codes never reach a log.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

import structlog

from services.kit.errors import FailedPrecondition, FieldViolation, InvalidArgument
from services.kit.ids import REQUEST_ID, REWARD_ID
from services.rewards.base import UseCases, require, reward_or_404
from services.rewards.domain.catalog import CODE_LENGTHS, DEFAULT_CODE_LENGTH, RewardKind
from services.rewards.domain.codes import CodeLine, generate_code, read_line
from services.rewards.store import RewardsUnit

log = structlog.get_logger()

MAX_LINES = 5000
MAX_PROBLEMS = 1000
MAX_GENERATED = 100_000
GENERATE_BATCH = 5000
MAX_FIRST_LINE = 10**12


@dataclass(frozen=True, slots=True)
class LineProblem:
    line: int
    reason: str
    detail: str
    first_seen_line: int = 0


@dataclass(frozen=True, slots=True)
class ImportResult:
    added: int
    problems: list[LineProblem]
    problems_total: int
    codes_free: int
    replayed: bool = False

    def json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ImportResult:
        data = json.loads(text)
        return cls(
            data["added"],
            [LineProblem(**problem) for problem in data["problems"]],
            data["problems_total"],
            data["codes_free"],
        )


@dataclass(frozen=True, slots=True)
class Generated:
    added: int
    codes_free: int


def _pool(unit: RewardsUnit, reward_id: str) -> None:
    reward = reward_or_404(unit, reward_id)
    if reward.spec.kind != RewardKind.CODE_POOL:
        raise FailedPrecondition(
            "NOT_A_CODE_POOL",
            f"reward {reward_id} is {reward.spec.kind.name}; only code-pool rewards take codes",
            {"reward_id": reward_id},
        )


class Codes(UseCases):
    async def import_chunk(
        self, reward_id: str, import_id: str, first_line: int, lines: list[str]
    ) -> ImportResult:
        require(("reward_id", reward_id, REWARD_ID), ("import_id", import_id, REQUEST_ID))
        violations = []
        if not 1 <= first_line <= MAX_FIRST_LINE:
            violations.append(FieldViolation("first_line", "must be a line number from 1"))
        if len(lines) > MAX_LINES:
            violations.append(FieldViolation("lines", f"at most {MAX_LINES} lines per chunk"))
        if violations:
            raise InvalidArgument(violations)
        read = [read_line(first_line + index, text) for index, text in enumerate(lines)]

        def work(unit: RewardsUnit) -> ImportResult:
            _pool(unit, reward_id)
            stored = unit.import_chunk(reward_id, import_id, first_line)
            if stored is not None:
                return replace(ImportResult.from_json(stored), replayed=True)
            problems = [
                LineProblem(line.line, "MALFORMED", line.problem) for line in read if line.problem
            ]
            added = unit.add_codes(reward_id, import_id, _codes(read))
            problems += [
                LineProblem(
                    line,
                    reason,
                    f"the code is already on line {first_seen} of this file"
                    if reason == "DUPLICATE_IN_FILE"
                    else "the code is already in the reward's pool",
                    first_seen,
                )
                for line, reason, first_seen in added.duplicates
            ]
            problems.sort(key=lambda problem: problem.line)
            result = ImportResult(
                added.added,
                problems[:MAX_PROBLEMS],
                len(problems),
                unit.code_counts(reward_id).free,
            )
            unit.save_import_chunk(reward_id, import_id, first_line, result.json())
            return result

        result = await self._store.write(work)
        log.info(
            "codes_imported",
            reward_id=reward_id,
            first_line=first_line,
            lines=len(lines),
            added=result.added,
            problems=result.problems_total,
        )
        return result

    async def generate(self, reward_id: str, count: int, length: int, request_id: str) -> Generated:
        require(("reward_id", reward_id, REWARD_ID), ("request_id", request_id, REQUEST_ID))
        violations = []
        if not 1 <= count <= MAX_GENERATED:
            violations.append(FieldViolation("count", f"must be between 1 and {MAX_GENERATED:,}"))
        if length and length not in CODE_LENGTHS:
            violations.append(FieldViolation("length", "must be between 6 and 32 (0: 10)"))
        if violations:
            raise InvalidArgument(violations)
        length = length or DEFAULT_CODE_LENGTH
        import_id = f"generated/{request_id}"
        total_added = 0
        while True:
            done = await self._store.read(lambda unit: _existing(unit, reward_id, import_id))
            wanted = min(GENERATE_BATCH, count - done)
            if wanted <= 0:
                break
            # Drawn outside the transaction; a collision is left out and drawn again.
            batch = [(0, generate_code(length)) for _ in range(wanted)]

            def work(unit: RewardsUnit, batch=batch) -> int:
                _pool(unit, reward_id)
                room = count - unit.imported(reward_id, import_id)
                return unit.add_codes(reward_id, import_id, batch[: max(room, 0)]).added

            total_added += await self._store.write(work)
        free = await self._store.read(lambda unit: unit.code_counts(reward_id).free)
        log.info("codes_generated", reward_id=reward_id, added=total_added)
        return Generated(total_added, free)


def _existing(unit: RewardsUnit, reward_id: str, import_id: str) -> int:
    _pool(unit, reward_id)
    return unit.imported(reward_id, import_id)


def _codes(read: list[CodeLine]) -> list[tuple[int, str]]:
    return [(line.line, line.code) for line in read if line.code is not None]
