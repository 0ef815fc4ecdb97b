"""The campaigns in memory, indexed so that evaluating an activity looks only at
campaigns that can match it: by activity type, then by the UTC days their
windows can touch. Open-ended and long campaigns sit in one list per type."""

from __future__ import annotations

from collections.abc import Iterable

from services.campaigns.domain.evaluation import Candidate, Decision, index_types
from services.campaigns.domain.model import Campaign, CampaignStatus
from services.kit.schedule import Schedule, local_date

DAY_US = 86_400 * 1_000_000
# Longer campaigns are not worth filing under each day.
MAX_DAYS_FILED = 62
ANY_TYPE = "*"
EVALUATED = (CampaignStatus.SCHEDULED, CampaignStatus.PAUSED)

IndexKey = tuple[str, int | None]


class Catalog:
    def __init__(self) -> None:
        self._entries: dict[str, Candidate] = {}
        self._index: dict[IndexKey, dict[str, Candidate]] = {}
        self._filed: dict[str, list[IndexKey]] = {}
        self._bounds: dict[str, tuple[int, int]] = {}

    def put(self, campaign: Campaign) -> Candidate:
        """Add or replace a campaign; its schedule is compiled again only for a new version."""
        previous = self._entries.get(campaign.campaign_id)
        if previous is not None and previous.campaign.version == campaign.version:
            entry = Candidate(campaign, previous.schedule)
            if previous.campaign.status is campaign.status:
                # Only figures changed (budget use): the filing stays.
                self._entries[campaign.campaign_id] = entry
                for key in self._filed.get(campaign.campaign_id, ()):
                    self._index[key][campaign.campaign_id] = entry
                return entry
        else:
            entry = Candidate(campaign, Schedule(campaign.spec.schedule))
        self._unfile(campaign.campaign_id)
        self._entries[campaign.campaign_id] = entry
        if campaign.status in EVALUATED:
            self._file(entry)
        return entry

    def get(self, campaign_id: str) -> Candidate | None:
        return self._entries.get(campaign_id)

    def all(self) -> list[Candidate]:
        return list(self._entries.values())

    def schedule_of(self, campaign: Campaign) -> Schedule:
        """The compiled schedule of this version of the campaign."""
        entry = self._entries.get(campaign.campaign_id)
        if entry is not None and entry.campaign.version == campaign.version:
            return entry.schedule
        return Schedule(campaign.spec.schedule)

    def local_days(self, occur_us: int, decision: Decision) -> dict[str, str]:
        """The activity's local date (ISO) in the zone of every campaign the decision
        names: the day its awards and refusals count on."""
        campaign_ids: Iterable[str] = {leg.campaign_id for leg in decision.legs} | {
            refused.campaign_id for refused in decision.refused
        }
        by_zone: dict[str, str] = {}
        days = {}
        for campaign_id in campaign_ids:
            tz = self._entries[campaign_id].schedule.zone
            if tz.key not in by_zone:
                by_zone[tz.key] = local_date(occur_us, tz).isoformat()
            days[campaign_id] = by_zone[tz.key]
        return days

    def candidates(self, activity_type: str, occur_us: int) -> list[Candidate]:
        day = occur_us // DAY_US
        found: dict[str, Candidate] = {}
        for filed_type in (activity_type, ANY_TYPE):
            for key in ((filed_type, day), (filed_type, None)):
                for campaign_id, entry in self._index.get(key, {}).items():
                    first, last = self._bounds[campaign_id]
                    if first <= occur_us < last:
                        found[campaign_id] = entry
        return list(found.values())

    def _file(self, entry: Candidate) -> None:
        spec = entry.campaign.spec
        first, last = entry.schedule.bounds()
        first = -(2**62) if first is None else first
        last = 2**62 if last is None else last
        types = index_types(spec.kind, spec.conditions, spec.reward.referral_stage) or (ANY_TYPE,)
        days: list[int | None]
        if last - first > MAX_DAYS_FILED * DAY_US:
            days = [None]
        else:
            days = list(range(first // DAY_US, last // DAY_US + 1))
        keys = [(activity_type, day) for activity_type in types for day in days]
        for key in keys:
            self._index.setdefault(key, {})[entry.campaign_id] = entry
        self._filed[entry.campaign_id] = keys
        self._bounds[entry.campaign_id] = (first, last)

    def _unfile(self, campaign_id: str) -> None:
        for key in self._filed.pop(campaign_id, []):
            bucket = self._index[key]
            bucket.pop(campaign_id, None)
            if not bucket:
                del self._index[key]
        self._bounds.pop(campaign_id, None)
