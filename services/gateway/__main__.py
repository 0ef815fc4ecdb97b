"""`python -m services.gateway`: the gateway on GATEWAY_LISTEN (default 127.0.0.1:8080)."""

from services.gateway.server import GatewaySettings, build_server
from services.kit.entry import run

if __name__ == "__main__":
    run("gateway", GatewaySettings, build_server)
