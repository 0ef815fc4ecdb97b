"""The rules of the games, by part; no grpc, no sqlite, no protobuf.

- `draw`: the provably fair draw, hmac-sha256-v1, and the seed commitment;
- `wheel`: wheel configurations, their canonical form and hash, published odds, landing;
- `calendar`: time zones, a member's day and week, active windows, daily limits;
- `catch`: catch-to-earn: the playing field, the spawn schedule, scoring, caps, plausibility;
- `stats`: the chi-square test of observed draws;
- `records`: what the service stores (wheel versions, seed pairs, spins, sessions, plays).
"""
