"""Re-compute a spin of hmac-sha256-v1 from its revealed seed, with nothing but
Python's standard library, so a player need not trust any code of ours.

    python tools/verify_spin.py --server-seed <hex> --commitment <hex> \
        --client-seed <text> --nonce 3 --weights 50,30,15,5 [--expect-segment 1]

Exit status 0 when the seed matches its commitment (and the segment matches the
expected one, if given); 1 otherwise. The commitment is required: a seed checked
against nothing proves nothing (argparse exits 2 without it).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import sys


def words(server_seed: bytes, client_seed: str, nonce: int):
    """Big-endian 32-bit words of HMAC-SHA256(seed, "{client_seed}:{nonce}:{round}")."""
    round_number = 0
    while True:
        block = hmac.new(
            server_seed, f"{client_seed}:{nonce}:{round_number}".encode(), hashlib.sha256
        ).digest()
        for offset in range(0, 32, 4):
            yield int.from_bytes(block[offset : offset + 4], "big")
        round_number += 1


def recompute(
    server_seed: bytes, client_seed: str, nonce: int, weights: list[int]
) -> tuple[int, int]:
    total = sum(weights)
    limit = (2**32 // total) * total
    r = next(x % total for x in words(server_seed, client_seed, nonce) if x < limit)
    cumulative = 0
    for index, weight in enumerate(weights):
        cumulative += weight
        if cumulative > r:
            return r, index
    raise AssertionError("unreachable: r is below the total weight")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-seed", required=True, help="the revealed server seed, hex")
    parser.add_argument(
        "--commitment", required=True, help="the server_seed_sha256 shown before play"
    )
    parser.add_argument("--client-seed", required=True)
    parser.add_argument("--nonce", type=int, required=True)
    parser.add_argument(
        "--weights", required=True, help="segment weights in wheel order, comma-separated"
    )
    parser.add_argument("--expect-segment", type=int, help="the segment the spin says was drawn")
    args = parser.parse_args(argv)

    seed = bytes.fromhex(args.server_seed)
    weights = [int(weight) for weight in args.weights.split(",")]
    ok = True
    digest = hashlib.sha256(seed).hexdigest()
    matches = digest == args.commitment.lower()
    ok &= matches
    print(f"commitment   {'matches' if matches else 'DOES NOT MATCH'} ({digest})")
    r, segment = recompute(seed, args.client_seed, args.nonce, weights)
    print(f"draw value   {r} (below total weight {sum(weights)})")
    print(f"segment      {segment}")
    if args.expect_segment is not None:
        matches = segment == args.expect_segment
        ok &= matches
        print(f"expected     {args.expect_segment}: {'matches' if matches else 'DOES NOT MATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
