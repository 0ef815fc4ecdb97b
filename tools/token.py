"""Print a development token for the gateway.

    python -m tools.token --role player --sub m-1       (make token ROLE=player SUB=m-1)

Signed HS256 with the gateway's development secret: GATEWAY_JWT_SECRET when
set, else the secret file the gateway generates on first start
(GATEWAY_JWT_SECRET_FILE, default var/gateway-jwt.secret; created here if absent).
Issuer and audience follow GATEWAY_JWT_ISSUER and GATEWAY_JWT_AUDIENCE.
"""

from __future__ import annotations

import argparse
import sys

from services.gateway.domain import KNOWN_ROLES, PLAYER
from services.gateway.server import GatewaySettings
from services.gateway.tokens import dev_secret, issue_token
from services.kit.clock import SystemClock
from services.kit.logs import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sub", required=True, help="the member id (or manager name)")
    parser.add_argument(
        "--role",
        action="append",
        choices=sorted(KNOWN_ROLES),
        help=f"a role; repeat for several (default: {PLAYER})",
    )
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    args = parser.parse_args(argv)
    if not args.sub.strip() or args.ttl <= 0:
        parser.error("--sub must not be empty and --ttl must be positive")
    # Logs (such as a newly generated secret) go to stderr; stdout is the token.
    configure_logging("token", "info", stream=sys.stderr)
    settings = GatewaySettings.from_env()
    if settings.jwks_file or settings.jwks_url:
        print(
            "the gateway verifies public-key tokens here; ask your identity provider",
            file=sys.stderr,
        )
        return 2
    token = issue_token(
        dev_secret(settings.jwt_secret, settings.jwt_secret_file),
        subject=args.sub,
        roles=args.role or [PLAYER],
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        now_us=SystemClock().now_us(),
        ttl_seconds=args.ttl,
    )
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
