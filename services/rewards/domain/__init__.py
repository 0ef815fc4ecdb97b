"""The rewards service's rules: catalog, eligibility and limits, codes,
redemption states and offers. Pure: no grpc, no sqlite, no protobuf."""
