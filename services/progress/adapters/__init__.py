"""One adapter per feed progress follows: it reads the stream and turns its
protobuf messages into the domain's events, and nothing else."""
