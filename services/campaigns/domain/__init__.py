"""The campaigns domain: rules and types only (no grpc, no sqlite)."""
