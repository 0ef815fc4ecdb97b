"""The progress domain: tiers and qualifying windows, badges, streaks and
challenges, and the facts they are computed from. Pure: no grpc, sqlite or protobuf."""
